package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"
	"k8s.io/utils/clock"

	"github.com/vaultctl/vaultctl/phases"
)

// ApplyLease is the Lease, in the Vault namespace, that keeps two applies from running at once
// (two CI runners, or a runner and an engineer).
const ApplyLease = "vaultctl-apply"

// MigrateLease is the Lease that keeps two migrations of namespace ns apart; migrations of
// different namespaces may run side by side.
func MigrateLease(ns string) string { return "vaultctl-migrate-" + ns }

// DefaultLeaseDuration is how long a holder's Lease record may stay unchanged, by the observer's
// clock, before the holder counts as gone.
const DefaultLeaseDuration = 15 * time.Minute

// ErrLockLost is the cause of a run's context being cancelled because its Lease was lost.
var ErrLockLost = errors.New("lost the lock")

// LostError says why a held lock was lost; it matches ErrLockLost.
type LostError struct {
	Purpose string // "apply"
	Reason  string
}

func (e *LostError) Error() string        { return fmt.Sprintf("lost the %s lock: %s", e.Purpose, e.Reason) }
func (e *LostError) Is(target error) bool { return target == ErrLockLost }

// LockTiming tunes a Lock; zero fields take the defaults. Tests set Clock and the intervals.
type LockTiming struct {
	// Duration: a holder whose Lease record has not changed for this long by our own clock is
	// gone (the holder's leaseDurationSeconds wins when set). Default DefaultLeaseDuration.
	Duration time.Duration
	// RenewInterval is how often the holder renews. Default Duration/3.
	RenewInterval time.Duration
	// PollInterval is how often Acquire looks again while it waits for a held lock. Default 2s.
	PollInterval time.Duration
	// Clock is the local clock every expiry is judged on. Default the real clock.
	Clock clock.Clock
}

// Lock is one coordination.k8s.io Lease held by one vaultctl run at a time.
//
// Expiry follows client-go's leaderelection: clocks of different machines are never compared.
// A holder's record (identity, renewTime, resourceVersion) is remembered with the local time it
// was first seen, and the holder counts as gone only when that record has not changed for the
// lease duration by our own clock. So a waiting run takes a dead holder's Lease over only after
// watching it for that long (Wait); a holder that died on this machine (same machine ID, PID
// gone) is taken over at once.
type Lock struct {
	Client    kubernetes.Interface
	Namespace string
	Name      string // ApplyLease, MigrateLease(ns)
	Purpose   string // what the holder does, for messages: "apply"
	// Host identifies this machine (default: hostname and boot ID); Identity is the holder name
	// written to the Lease (default Host/PID).
	Host, Identity string
	// Wait is how long Acquire waits for a held lock before refusing; 0 refuses at once.
	Wait time.Duration
	LockTiming
	// Log hears the lock's steps (taken, renewed, released) for -v; nil: silent.
	Log func(line string)
	// TookOverDead is set by Acquire when the holder was a process of this machine that no
	// longer runs: what that run left half done (a pending Helm revision) is nobody else's.
	TookOverDead bool

	mu     sync.Mutex
	stop   chan struct{}
	done   chan struct{}
	cancel context.CancelCauseFunc
	lost   bool
}

func (l *Lock) defaults() {
	if l.Host == "" {
		l.Host = machineID()
	}
	if l.Identity == "" {
		l.Identity = fmt.Sprintf("%s/%d", l.Host, os.Getpid())
	}
	if l.Purpose == "" {
		l.Purpose = "vaultctl"
	}
	if l.Duration <= 0 {
		l.Duration = DefaultLeaseDuration
	}
	if l.RenewInterval <= 0 {
		l.RenewInterval = l.Duration / 3
	}
	if l.PollInterval <= 0 {
		l.PollInterval = 2 * time.Second
	}
	if l.Clock == nil {
		l.Clock = clock.RealClock{}
	}
}

func (l *Lock) logf(format string, args ...any) {
	if l.Log != nil {
		l.Log(fmt.Sprintf(format, args...))
	}
}

func (l *Lock) deleteCmd() string {
	return fmt.Sprintf("kubectl delete lease -n %s %s", l.Namespace, l.Name)
}

// record is what identifies one write of a holder: any renewal changes it.
type record struct{ holder, renew, rv string }

func recordOf(le *coordinationv1.Lease) record {
	r := record{holder: holderOf(le), rv: le.ResourceVersion}
	if le.Spec.RenewTime != nil {
		r.renew = le.Spec.RenewTime.UTC().Format(time.RFC3339Nano)
	}
	return r
}

func holderOf(le *coordinationv1.Lease) string {
	if le.Spec.HolderIdentity == nil {
		return ""
	}
	return *le.Spec.HolderIdentity
}

// Acquire takes the Lease, creating the namespace it lives in when missing, and renews it until
// Release. The returned context derives from ctx and is cancelled, with a *LostError as its
// cause, when the Lease is lost: another holder took it, it was deleted, or renewals failed for
// so long that it could be taken over.
func (l *Lock) Acquire(ctx context.Context) (context.Context, error) {
	l.defaults()
	if err := l.ensureNamespace(ctx); err != nil {
		return nil, phases.Fail("check that the cluster is reachable and your credentials may create namespaces", "%v", err)
	}
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	start := l.Clock.Now()
	var seen record
	var seenAt time.Time
	for {
		cur, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
		switch {
		case apierrors.IsNotFound(err):
			_, err = leases.Create(ctx, l.lease(nil), metav1.CreateOptions{})
			if err == nil {
				return l.held(ctx, "took")
			}
			if apierrors.IsAlreadyExists(err) {
				continue // another run created it at the same moment: look at it
			}
		case err == nil:
			holder := holderOf(cur)
			dur := l.Duration
			if s := cur.Spec.LeaseDurationSeconds; s != nil && *s > 0 {
				dur = time.Duration(*s) * time.Second
			}
			take := ""
			switch {
			case holder == "" || holder == l.Identity:
				take = "took"
			case deadLocalHolder(holder, l.Host):
				take = fmt.Sprintf("took over from %s (a process of this machine that no longer runs)", holder)
				l.TookOverDead = true
			default:
				if r := recordOf(cur); r != seen {
					seen, seenAt = r, l.Clock.Now()
				}
				if unchanged := l.Clock.Since(seenAt); unchanged >= dur {
					take = fmt.Sprintf("took over from %s (its Lease has not changed for %s by this machine's clock)", holder, unchanged.Round(time.Second))
				}
			}
			if take == "" {
				if l.Clock.Since(start)+l.PollInterval > l.Wait {
					return nil, l.heldByOther(cur, holder, dur)
				}
				l.logf("lock %s/%s: held by %s; waiting (up to %s)", l.Namespace, l.Name, holder, l.Wait)
				select {
				case <-ctx.Done():
					return nil, context.Cause(ctx)
				case <-l.Clock.After(l.PollInterval):
				}
				continue
			}
			_, err = leases.Update(ctx, l.lease(cur), metav1.UpdateOptions{})
			if err == nil {
				return l.held(ctx, take)
			}
			if apierrors.IsConflict(err) {
				continue // someone else wrote it first (the resourceVersion changed): look again
			}
		}
		return nil, phases.Fail("check that your credentials may manage coordination.k8s.io Leases in namespace "+l.Namespace,
			"taking the %s lock %s/%s: %v", l.Purpose, l.Namespace, l.Name, err)
	}
}

func (l *Lock) heldByOther(cur *coordinationv1.Lease, holder string, dur time.Duration) error {
	since := ""
	if t := cur.Spec.AcquireTime; t != nil {
		since = " since " + t.UTC().Format(time.RFC3339) + " (its clock)"
	}
	return phases.Fail(fmt.Sprintf("wait for it to finish, or pass --lock-timeout %s to wait here: a holder whose Lease stays unchanged for %s by this machine's clock is taken over; if it died, delete the lock: %s",
		shortDuration(dur+time.Minute), shortDuration(dur), l.deleteCmd()),
		"another vaultctl %s (%s) has held the lock %s/%s%s", l.Purpose, holder, l.Namespace, l.Name, since)
}

// lease is the Lease this process writes: cur updated in place (keeping its resourceVersion, so
// a concurrent writer makes the update fail) or a new one.
func (l *Lock) lease(cur *coordinationv1.Lease) *coordinationv1.Lease {
	now := metav1.NewMicroTime(l.Clock.Now())
	secs := int32(l.Duration / time.Second)
	me := l.Identity
	spec := coordinationv1.LeaseSpec{HolderIdentity: &me, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	if cur == nil {
		return &coordinationv1.Lease{
			ObjectMeta: metav1.ObjectMeta{Name: l.Name, Namespace: l.Namespace, Labels: map[string]string{phases.ManagedByLabel: "vaultctl"}},
			Spec:       spec,
		}
	}
	out := cur.DeepCopy()
	out.Spec = spec
	return out
}

func (l *Lock) held(ctx context.Context, how string) (context.Context, error) {
	l.logf("lock %s/%s: %s as %s", l.Namespace, l.Name, how, l.Identity)
	run, cancel := context.WithCancelCause(ctx)
	l.mu.Lock()
	l.stop, l.done, l.cancel, l.lost = make(chan struct{}), make(chan struct{}), cancel, false
	l.mu.Unlock()
	go l.renewLoop(l.stop, l.done)
	return run, nil
}

// renewLoop renews until stopped, and cancels the run when the Lease is lost. A failed renewal
// is retried sooner; once renewals have failed for Duration-RenewInterval (two thirds of it
// with the defaults, like client-go's renew deadline) the run stops, before anyone could take
// the Lease over.
func (l *Lock) renewLoop(stop, done chan struct{}) {
	defer close(done)
	lastOK := l.Clock.Now()
	wait := l.RenewInterval
	for {
		select {
		case <-stop:
			return
		case <-l.Clock.After(wait):
		}
		err := l.renew()
		var lost *LostError
		switch {
		case err == nil:
			lastOK, wait = l.Clock.Now(), l.RenewInterval
			l.logf("lock %s/%s: renewed", l.Namespace, l.Name)
			continue
		case errors.As(err, &lost):
		case l.Clock.Since(lastOK) >= l.Duration-l.RenewInterval:
			lost = &LostError{Purpose: l.Purpose, Reason: fmt.Sprintf("renewing the Lease %s/%s failed for %s (%v); another run may take it over",
				l.Namespace, l.Name, l.Clock.Since(lastOK).Round(time.Second), err)}
		default:
			wait = l.RenewInterval / 5
			l.logf("lock %s/%s: renewing failed, retrying in %s: %v", l.Namespace, l.Name, wait, err)
			continue
		}
		l.mu.Lock()
		l.lost = true
		l.mu.Unlock()
		l.logf("lock %s/%s: %v", l.Namespace, l.Name, lost)
		l.cancel(lost)
		return
	}
}

// renew moves renewTime forward; a *LostError when the Lease is no longer ours.
func (l *Lock) renew() error {
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	for range 3 {
		cur, err := leases.Get(ctx, l.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return &LostError{Purpose: l.Purpose, Reason: fmt.Sprintf("the Lease %s/%s was deleted", l.Namespace, l.Name)}
		}
		if err != nil {
			return err
		}
		if h := holderOf(cur); h != l.Identity {
			if h == "" {
				h = "nobody (it was released)"
			}
			return &LostError{Purpose: l.Purpose, Reason: fmt.Sprintf("the Lease %s/%s is now held by %s", l.Namespace, l.Name, h)}
		}
		now := metav1.NewMicroTime(l.Clock.Now())
		cur.Spec.RenewTime = &now
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
		if !apierrors.IsConflict(err) {
			return err
		}
	}
	return fmt.Errorf("the Lease %s/%s keeps changing under us", l.Namespace, l.Name)
}

// Release stops renewing and frees the Lease if it is still ours. Its error is for the user to
// see: an unreleased lock makes the next run wait.
func (l *Lock) Release(ctx context.Context) error {
	l.mu.Lock()
	stop, done, cancel := l.stop, l.done, l.cancel
	l.stop = nil
	l.mu.Unlock()
	if stop == nil {
		return nil
	}
	close(stop)
	<-done
	defer cancel(errors.New("the " + l.Purpose + " lock was released"))
	l.mu.Lock()
	lost := l.lost
	l.mu.Unlock()
	if lost {
		return nil // not ours any more: nothing to free, and the run already said so
	}
	ctx, cancelTimeout := context.WithTimeout(context.WithoutCancel(ctx), 30*time.Second)
	defer cancelTimeout()
	leases := l.Client.CoordinationV1().Leases(l.Namespace)
	var err error
	for range 3 {
		var cur *coordinationv1.Lease
		cur, err = leases.Get(ctx, l.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return nil
		}
		if err != nil {
			break
		}
		if holderOf(cur) != l.Identity {
			return nil
		}
		empty := ""
		cur.Spec.HolderIdentity = &empty
		if _, err = leases.Update(ctx, cur, metav1.UpdateOptions{}); err == nil {
			l.logf("lock %s/%s: released", l.Namespace, l.Name)
			return nil
		}
		if !apierrors.IsConflict(err) {
			break
		}
	}
	return fmt.Errorf("releasing the %s lock %s/%s: %v; the next run waits until it has seen the Lease unchanged for %s, or delete it: %s",
		l.Purpose, l.Namespace, l.Name, err, shortDuration(l.Duration), l.deleteCmd())
}

func (l *Lock) ensureNamespace(ctx context.Context) error {
	nss := l.Client.CoreV1().Namespaces()
	_, err := nss.Get(ctx, l.Namespace, metav1.GetOptions{})
	if !apierrors.IsNotFound(err) {
		return err
	}
	ns := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: l.Namespace, Labels: map[string]string{phases.ManagedByLabel: "vaultctl"}}}
	if _, err := nss.Create(ctx, ns, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		return fmt.Errorf("creating namespace %s: %w", l.Namespace, err)
	}
	return nil
}

// machineID names this machine for lock holders: the hostname plus the kernel's boot ID, so
// containers that share a hostname (CI runners) are not mistaken for one another.
func machineID() string {
	host, _ := os.Hostname()
	if b, err := os.ReadFile("/proc/sys/kernel/random/boot_id"); err == nil && len(b) >= 8 {
		host += "@" + string(b[:8])
	}
	return host
}

// deadLocalHolder reports whether holder ("machine/pid") is a process of this machine that no
// longer exists: a killed run on the same machine need not wait for its lock to expire.
func deadLocalHolder(holder, host string) bool {
	h, pidText, ok := strings.Cut(holder, "/")
	// PIDs are only comparable within one PID namespace; a boot ID shared by containers with
	// their own PID namespaces is the residual risk, and the lock still expires.
	if !ok || h != host {
		return false
	}
	pid, err := strconv.Atoi(pidText)
	if err != nil || pid <= 0 {
		return false
	}
	return syscall.Kill(pid, 0) == syscall.ESRCH
}

// shortDuration prints 15m rather than 15m0s.
func shortDuration(d time.Duration) string {
	s := d.String()
	if strings.HasSuffix(s, "m0s") {
		s = strings.TrimSuffix(s, "0s")
	}
	if strings.HasSuffix(s, "h0m") {
		s = strings.TrimSuffix(s, "0m")
	}
	return s
}
