package action

import (
	"context"
	"errors"
	"fmt"
	"os"
	"strings"
	"testing"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
	clocktesting "k8s.io/utils/clock/testing"

	"github.com/vaultctl/vaultctl/phases"
)

const testNS = "vault"

var epoch = time.Date(2030, 1, 2, 3, 4, 5, 0, time.UTC)

func newTestLock(cs *fake.Clientset, clk *clocktesting.FakeClock, id string) *Lock {
	return &Lock{
		Client: cs, Namespace: testNS, Name: ApplyLease, Purpose: "apply",
		Host: "box", Identity: id,
		LockTiming: LockTiming{Duration: time.Minute, RenewInterval: 20 * time.Second, PollInterval: 10 * time.Second, Clock: clk},
	}
}

// putLease writes the Lease as another process would: holder, renewTime by its own clock.
func putLease(t *testing.T, cs *fake.Clientset, holder string, renew time.Time, secs int32) {
	t.Helper()
	rt := metav1.NewMicroTime(renew)
	le := &coordinationv1.Lease{
		ObjectMeta: metav1.ObjectMeta{Name: ApplyLease, Namespace: testNS},
		Spec:       coordinationv1.LeaseSpec{HolderIdentity: &holder, RenewTime: &rt, AcquireTime: &rt, LeaseDurationSeconds: &secs},
	}
	leases := cs.CoordinationV1().Leases(testNS)
	if _, err := leases.Get(context.Background(), ApplyLease, metav1.GetOptions{}); err == nil {
		_, err = leases.Update(context.Background(), le, metav1.UpdateOptions{})
		if err != nil {
			t.Fatal(err)
		}
		return
	}
	if _, err := leases.Create(context.Background(), le, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
}

func holderNow(t *testing.T, cs *fake.Clientset) string {
	t.Helper()
	le, err := cs.CoordinationV1().Leases(testNS).Get(context.Background(), ApplyLease, metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	return holderOf(le)
}

// waitForWaiter blocks until a goroutine waits on the fake clock (a poll or a renewal timer).
func waitForWaiter(t *testing.T, clk *clocktesting.FakeClock) {
	t.Helper()
	if !waitForWaiterOr(t, clk, nil) {
		t.Fatal("unreachable")
	}
}

// waitForWaiterOr is waitForWaiter that gives up, returning false, once done is closed.
func waitForWaiterOr(t *testing.T, clk *clocktesting.FakeClock, done <-chan struct{}) bool {
	t.Helper()
	deadline := time.Now().Add(5 * time.Second)
	for !clk.HasWaiters() {
		select {
		case <-done:
			return false
		default:
		}
		if time.Now().After(deadline) {
			t.Fatal("nothing is waiting on the clock")
		}
		time.Sleep(time.Millisecond)
	}
	return true
}

func TestAcquireCreatesNamespaceAndLeaseAndReleaseFreesIt(t *testing.T) {
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(epoch)
	l := newTestLock(cs, clk, "box/1")
	ctx, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	ns, err := cs.CoreV1().Namespaces().Get(context.Background(), testNS, metav1.GetOptions{})
	if err != nil || ns.Labels[phases.ManagedByLabel] != "vaultctl" {
		t.Fatalf("namespace not created with the managed-by label: %v %v", ns, err)
	}
	le, err := cs.CoordinationV1().Leases(testNS).Get(context.Background(), ApplyLease, metav1.GetOptions{})
	if err != nil || holderOf(le) != "box/1" || *le.Spec.LeaseDurationSeconds != 60 || le.Labels[phases.ManagedByLabel] != "vaultctl" {
		t.Fatalf("lease: %+v %v", le, err)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatal(err)
	}
	if h := holderNow(t, cs); h != "" {
		t.Fatalf("released lease still held by %q", h)
	}
	if ctx.Err() == nil {
		t.Error("the run's context outlives the lock")
	}
	if errors.Is(context.Cause(ctx), ErrLockLost) {
		t.Errorf("a release is not a loss: %v", context.Cause(ctx))
	}
	// A released lock is free for anyone at once.
	other := newTestLock(cs, clk, "elsewhere/2")
	other.Host = "elsewhere"
	if _, err := other.Acquire(context.Background()); err != nil {
		t.Fatalf("a released lock must be free: %v", err)
	}
	defer other.Release(context.Background())
	if h := holderNow(t, cs); h != "elsewhere/2" {
		t.Fatalf("holder %q", h)
	}
}

func TestFreshLeaseOfAnotherHolderIsRefusedWithTheWayOut(t *testing.T) {
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(epoch)
	// Its renewTime is an hour old by its clock: irrelevant, we have only just seen the record.
	putLease(t, cs, "ci-runner-7/4242", epoch.Add(-time.Hour), 900)
	_, err := newTestLock(cs, clk, "box/1").Acquire(context.Background())
	if err == nil {
		t.Fatal("a held lock was taken on first sight")
	}
	msg := phases.WithHint(err).Error()
	for _, want := range []string{"another vaultctl apply (ci-runner-7/4242) has held the lock vault/vaultctl-apply", "kubectl delete lease -n vault vaultctl-apply", "--lock-timeout 16m"} {
		if !strings.Contains(msg, want) {
			t.Errorf("message lacks %q:\n%s", want, msg)
		}
	}
	if h := holderNow(t, cs); h != "ci-runner-7/4242" {
		t.Fatalf("a refused acquire changed the holder to %q", h)
	}
}

func TestUnchangedRecordIsTakenOverByOurClockEvenWithRenewTimeInTheFuture(t *testing.T) {
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(epoch)
	// The holder's clock runs an hour ahead: comparing with it would never let us in.
	putLease(t, cs, "far/1", epoch.Add(time.Hour), 60)
	l := newTestLock(cs, clk, "box/1")
	l.Wait = 5 * time.Minute
	done := make(chan error, 1)
	go func() {
		_, err := l.Acquire(context.Background())
		done <- err
	}()
	var renewedAt time.Time
	for {
		select {
		case err := <-done:
			if err != nil {
				t.Fatal(err)
			}
			defer l.Release(context.Background())
			le, err := cs.CoordinationV1().Leases(testNS).Get(context.Background(), ApplyLease, metav1.GetOptions{})
			if err != nil || holderOf(le) != "box/1" {
				t.Fatalf("lease after take-over: %+v %v", le, err)
			}
			// The record changed at +30s (a renewal), so the minute starts again from when we
			// saw that; AcquireTime is our own clock at the take-over.
			at := le.Spec.AcquireTime.Time
			if renewedAt.IsZero() || at.Sub(renewedAt) < time.Minute || at.Sub(renewedAt) > time.Minute+2*l.PollInterval {
				t.Fatalf("took over at +%s; the record last changed at +%s", at.Sub(epoch), renewedAt.Sub(epoch))
			}
			return
		default:
		}
		waitForWaiter(t, clk)
		if clk.Since(epoch) == 30*time.Second {
			putLease(t, cs, "far/1", epoch.Add(time.Hour+30*time.Second), 60)
			renewedAt = clk.Now()
		}
		if clk.Since(epoch) > 10*time.Minute {
			t.Fatal("never taken over")
		}
		clk.Step(l.PollInterval)
		time.Sleep(time.Millisecond)
	}
}

func TestDeadHolderOnThisMachineIsTakenOverAtOnce(t *testing.T) {
	cs := fake.NewClientset()
	putLease(t, cs, "box/999999999", epoch, 900)
	l := newTestLock(cs, clocktesting.NewFakeClock(epoch), "box/1")
	if _, err := l.Acquire(context.Background()); err != nil {
		t.Fatalf("a dead local holder must not block: %v", err)
	}
	defer l.Release(context.Background())
	if h := holderNow(t, cs); h != "box/1" {
		t.Fatalf("holder %q", h)
	}
	if !l.TookOverDead {
		t.Error("TookOverDead not set: a pending Helm revision of the dead run would wait out its grace")
	}
}

func TestLostLeaseCancelsTheRunWithTheCause(t *testing.T) {
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(epoch)
	l := newTestLock(cs, clk, "box/1")
	ctx, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	// One renewal goes through.
	waitForWaiter(t, clk)
	clk.Step(l.RenewInterval)
	waitForWaiter(t, clk)
	if ctx.Err() != nil {
		t.Fatalf("cancelled while held: %v", context.Cause(ctx))
	}
	// Someone deletes the lock (as the hint says for a dead holder) and another run takes it.
	putLease(t, cs, "thief/9", epoch, 900)
	clk.Step(l.RenewInterval)
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("losing the Lease did not cancel the run")
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), "lost the apply lock: the Lease vault/vaultctl-apply is now held by thief/9") {
		t.Fatalf("cause: %v", cause)
	}
	if err := l.Release(context.Background()); err != nil {
		t.Fatalf("releasing a lost lock: %v", err)
	}
	if h := holderNow(t, cs); h != "thief/9" {
		t.Fatalf("release of a lost lock freed the new holder's Lease: %q", h)
	}
}

func TestRenewalsFailingUntilExpiryCancelTheRun(t *testing.T) {
	cs := fake.NewClientset()
	clk := clocktesting.NewFakeClock(epoch)
	l := newTestLock(cs, clk, "box/1")
	ctx, err := l.Acquire(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer l.Release(context.Background())
	cs.PrependReactor("get", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("connection refused")
	})
	// Duration 1m, renewals every 20s: a failure at +20s is retried every 4s; at +40s, the
	// renew deadline, the run stops, 20s before anyone could take the Lease over.
	waitForWaiter(t, clk)
	clk.Step(l.RenewInterval)
	for waitForWaiterOr(t, clk, ctx.Done()) {
		if clk.Since(epoch) >= 40*time.Second {
			t.Fatalf("still running at +%s with renewals failing since +0s", clk.Since(epoch))
		}
		clk.Step(4 * time.Second)
	}
	select {
	case <-ctx.Done():
	case <-time.After(5 * time.Second):
		t.Fatal("failing renewals did not cancel the run")
	}
	cause := context.Cause(ctx)
	if !errors.Is(cause, ErrLockLost) || !strings.Contains(cause.Error(), "lost the apply lock: renewing the Lease vault/vaultctl-apply failed for 40s (connection refused)") {
		t.Fatalf("cause: %v", cause)
	}
}

func TestReleaseReturnsItsError(t *testing.T) {
	cs := fake.NewClientset()
	l := newTestLock(cs, clocktesting.NewFakeClock(epoch), "box/1")
	if _, err := l.Acquire(context.Background()); err != nil {
		t.Fatal(err)
	}
	cs.PrependReactor("update", "leases", func(k8stesting.Action) (bool, runtime.Object, error) {
		return true, nil, errors.New("etcdserver: request timed out")
	})
	err := l.Release(context.Background())
	if err == nil {
		t.Fatal("a failed release was dropped")
	}
	for _, want := range []string{"releasing the apply lock vault/vaultctl-apply: etcdserver: request timed out", "kubectl delete lease -n vault vaultctl-apply"} {
		if !strings.Contains(err.Error(), want) {
			t.Errorf("error lacks %q: %v", want, err)
		}
	}
}

func TestDeadLocalHolder(t *testing.T) {
	if !deadLocalHolder("box/999999999", "box") {
		t.Error("a PID that does not exist on this host is dead")
	}
	if deadLocalHolder(fmt.Sprintf("box/%d", os.Getpid()), "box") {
		t.Error("this very process is alive")
	}
	if deadLocalHolder("other-host/999999999", "box") {
		t.Error("a holder on another host cannot be judged from here")
	}
}

func TestLeaseNames(t *testing.T) {
	if ApplyLease != "vaultctl-apply" || MigrateLease("production") != "vaultctl-migrate-production" {
		t.Fatal(ApplyLease, MigrateLease("production"))
	}
	if shortDuration(16*time.Minute) != "16m" || shortDuration(time.Hour) != "1h" || shortDuration(90*time.Second) != "1m30s" {
		t.Fatal(shortDuration(16*time.Minute), shortDuration(time.Hour), shortDuration(90*time.Second))
	}
}
