package phases

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"syscall"
	"time"

	coordinationv1 "k8s.io/api/coordination/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// ApplyLease is the Lease, in the Vault namespace, that keeps two applies from running at once
// (two CI runners, or a runner and an engineer). A holder that died keeps it only until it
// expires.
const ApplyLease = "vaultctl-apply"

const applyLeaseDuration = 15 * time.Minute

// Lock takes the apply Lease and returns the function that releases it.
func (e *Env) Lock(ctx context.Context) (func(), error) {
	ns := e.Config.Vault.Namespace
	if err := ensureNamespace(ctx, e.Kube, ns); err != nil {
		return nil, Fail("check that the cluster is reachable and your credentials may create namespaces", "%v", err)
	}
	host := machineID()
	me := fmt.Sprintf("%s/%d", host, os.Getpid())
	leases := e.Kube.CoordinationV1().Leases(ns)
	now := metav1.NewMicroTime(time.Now())
	secs := int32(applyLeaseDuration / time.Second)
	spec := coordinationv1.LeaseSpec{HolderIdentity: &me, LeaseDurationSeconds: &secs, AcquireTime: &now, RenewTime: &now}
	cur, err := leases.Get(ctx, ApplyLease, metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = leases.Create(ctx, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: ApplyLease, Namespace: ns, Labels: map[string]string{ManagedByLabel: "vaultctl"}}, Spec: spec}, metav1.CreateOptions{})
	case err != nil:
	default:
		if cur.Spec.HolderIdentity != nil && *cur.Spec.HolderIdentity != "" && cur.Spec.RenewTime != nil &&
			time.Since(cur.Spec.RenewTime.Time) < applyLeaseDuration && !deadLocalHolder(*cur.Spec.HolderIdentity, host) {
			return nil, Fail(fmt.Sprintf("wait for it to finish; if it died, the lock expires at %s, or delete it: kubectl delete lease -n %s %s",
				cur.Spec.RenewTime.Add(applyLeaseDuration).Format(time.RFC3339), ns, ApplyLease),
				"another vaultctl apply (%s) has held the lock since %s", *cur.Spec.HolderIdentity, cur.Spec.RenewTime.Format(time.RFC3339))
		}
		cur.Spec = spec
		// Update fails on a concurrent change (resourceVersion), so two runners cannot both win.
		_, err = leases.Update(ctx, cur, metav1.UpdateOptions{})
	}
	if apierrors.IsConflict(err) || apierrors.IsAlreadyExists(err) {
		return nil, Fail("run apply again once the other run has finished", "another vaultctl apply took the lock at the same moment")
	}
	if err != nil {
		return nil, Fail("check that your credentials may manage coordination.k8s.io Leases in namespace "+ns, "taking the apply lock: %v", err)
	}
	// Renew while the run lasts: a long apply (Helm, init, Raft waits) must not lose the lock.
	stop := make(chan struct{})
	go func() {
		t := time.NewTicker(applyLeaseDuration / 3)
		defer t.Stop()
		for {
			select {
			case <-stop:
				return
			case <-t.C:
				if l, err := leases.Get(ctx, ApplyLease, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == me {
					now := metav1.NewMicroTime(time.Now())
					l.Spec.RenewTime = &now
					_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
				}
			}
		}
	}()
	return func() {
		close(stop)
		ctx := context.WithoutCancel(ctx)
		if l, err := leases.Get(ctx, ApplyLease, metav1.GetOptions{}); err == nil && l.Spec.HolderIdentity != nil && *l.Spec.HolderIdentity == me {
			empty := ""
			l.Spec.HolderIdentity = &empty
			_, _ = leases.Update(ctx, l, metav1.UpdateOptions{})
		}
	}, nil
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
// longer exists: a killed apply on the same machine need not wait for its lock to expire.
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
