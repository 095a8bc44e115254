package lifecycle

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"
	"testing"
	"time"
)

func TestPlanRestartsStandbysFirstLeaderLast(t *testing.T) {
	nodes := []Node{
		{Pod: "vault-2", UID: "u2", Outdated: true},
		{Pod: "vault-0", UID: "u0", Outdated: true, Leader: true},
		{Pod: "vault-1", UID: "u1", Outdated: true},
	}
	var got []string
	for _, s := range PlanRestarts(nodes) {
		got = append(got, fmt.Sprintf("%s %s %s", s.Kind, s.Pod, s.UID))
	}
	want := []string{"restart vault-1 u1", "restart vault-2 u2", "step-down vault-0 u0", "restart vault-0 u0"}
	if !slices.Equal(got, want) {
		t.Fatalf("got %v, want %v", got, want)
	}
}

func TestPlanRestartsOnlyOutdatedPods(t *testing.T) {
	cases := []struct {
		name  string
		nodes []Node
		want  []string
	}{
		{"nothing outdated", []Node{{Pod: "vault-0", Leader: true}, {Pod: "vault-1"}}, nil},
		{"a resumed run: standbys done, the leader left", []Node{{Pod: "vault-0"}, {Pod: "vault-1", Outdated: true, Leader: true}, {Pod: "vault-2"}},
			[]string{"step-down vault-1", "restart vault-1"}},
		{"the leader already new (it was elected after its restart)", []Node{{Pod: "vault-0", Leader: true}, {Pod: "vault-2", Outdated: true}},
			[]string{"restart vault-2"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			var got []string
			for _, s := range PlanRestarts(c.nodes) {
				got = append(got, string(s.Kind)+" "+s.Pod)
			}
			if !slices.Equal(got, c.want) {
				t.Fatalf("got %v, want %v", got, c.want)
			}
		})
	}
}

// fakeCluster plays a 3-node cluster: a deleted pod comes back after `rejoinAfter` polls, a
// step-down elects `next` after one poll.
type fakeCluster struct {
	log         []string
	unhealthy   string // Healthy reports this problem
	rejoinAfter int
	neverRejoin string // this pod never rejoins
	next        string
	polls       map[string]int
	stepDownErr error
}

func (f *fakeCluster) Healthy(context.Context) (bool, string, error) {
	if f.unhealthy != "" {
		return false, f.unhealthy, nil
	}
	return true, "", nil
}

func (f *fakeCluster) DeletePod(_ context.Context, pod, uid string) error {
	f.log = append(f.log, "delete "+pod+" "+uid)
	return nil
}

func (f *fakeCluster) Rejoined(_ context.Context, pod, _ string) (bool, string, error) {
	f.polls[pod]++
	if pod == f.neverRejoin {
		return false, "the new pod to unseal (KMS)", nil
	}
	if f.polls[pod] <= f.rejoinAfter {
		return false, "autopilot to promote it to voter", nil
	}
	f.log = append(f.log, "rejoined "+pod)
	return true, "", nil
}

func (f *fakeCluster) StepDown(_ context.Context, pod string) error {
	f.log = append(f.log, "step-down "+pod)
	return f.stepDownErr
}

func (f *fakeCluster) NewLeader(_ context.Context, old string) (string, string, error) {
	f.polls["leader"]++
	if f.polls["leader"] < 2 {
		return "", "a leader other than " + old, nil
	}
	f.log = append(f.log, "leader "+f.next)
	return f.next, "", nil
}

func plan3() []Step {
	return PlanRestarts([]Node{{Pod: "vault-0", UID: "u0", Outdated: true, Leader: true}, {Pod: "vault-1", UID: "u1", Outdated: true}, {Pod: "vault-2", UID: "u2", Outdated: true}})
}

func TestUpgraderWaitsForEachPodBeforeTheNext(t *testing.T) {
	f := &fakeCluster{rejoinAfter: 2, next: "vault-1", polls: map[string]int{}}
	var progress []string
	u := &Upgrader{Cluster: f, Poll: time.Millisecond, Timeout: time.Second, Progress: func(l string) { progress = append(progress, l) }}
	res, err := u.Run(context.Background(), plan3())
	if err != nil {
		t.Fatal(err)
	}
	want := []string{"delete vault-1 u1", "rejoined vault-1", "delete vault-2 u2", "rejoined vault-2", "step-down vault-0", "leader vault-1", "delete vault-0 u0", "rejoined vault-0"}
	if !slices.Equal(f.log, want) {
		t.Fatalf("order:\n%v\nwant\n%v", f.log, want)
	}
	for _, r := range res {
		if r.Status != StepDone {
			t.Errorf("%s: %s", r.Step, r.Status)
		}
	}
	if res[2].Detail != "new leader vault-1" {
		t.Errorf("step-down detail %q", res[2].Detail)
	}
	if !slices.ContainsFunc(progress, func(l string) bool { return strings.Contains(l, "waiting for autopilot to promote it to voter") }) {
		t.Errorf("progress does not say what it waits for: %v", progress)
	}
}

func TestUpgraderStopsAtTheFirstProblem(t *testing.T) {
	f := &fakeCluster{neverRejoin: "vault-2", next: "vault-1", polls: map[string]int{}}
	u := &Upgrader{Cluster: f, Poll: time.Millisecond, Timeout: 20 * time.Millisecond}
	res, err := u.Run(context.Background(), plan3())
	var stop *StepError
	if !errors.As(err, &stop) {
		t.Fatalf("want a StepError, got %v", err)
	}
	if stop.Step.Pod != "vault-2" || !strings.Contains(stop.What, "the new pod to unseal") {
		t.Errorf("stopped at %s: %s", stop.Step, stop.What)
	}
	if !strings.Contains(stop.State, "restarted vault-1") || !strings.Contains(stop.State, "vault-2 was deleted and has not rejoined") {
		t.Errorf("state %q", stop.State)
	}
	if !strings.Contains(stop.Next, "vaultctl upgrade") {
		t.Errorf("next %q", stop.Next)
	}
	got := []string{res[0].Status, res[1].Status, res[2].Status, res[3].Status}
	if !slices.Equal(got, []string{StepDone, StepFailed, StepNotRun, StepNotRun}) {
		t.Errorf("statuses %v", got)
	}
	if slices.Contains(f.log, "step-down vault-0") {
		t.Error("the leader stepped down although a standby never rejoined")
	}
}

func TestUpgraderRestartsNothingInADegradedCluster(t *testing.T) {
	f := &fakeCluster{unhealthy: "2 of 3 voters", polls: map[string]int{}}
	u := &Upgrader{Cluster: f, Poll: time.Millisecond, Timeout: 20 * time.Millisecond}
	_, err := u.Run(context.Background(), plan3())
	var stop *StepError
	if !errors.As(err, &stop) || !strings.Contains(stop.What, "2 of 3 voters") {
		t.Fatalf("want a refusal naming the problem, got %v", err)
	}
	if !strings.Contains(stop.State, "vault-1 was not restarted") {
		t.Errorf("state %q", stop.State)
	}
	if len(f.log) != 0 {
		t.Errorf("a degraded cluster lost a pod: %v", f.log)
	}
}

func TestUpgraderReportsAFailedStepDown(t *testing.T) {
	f := &fakeCluster{next: "vault-1", polls: map[string]int{}, stepDownErr: errors.New("permission denied")}
	u := &Upgrader{Cluster: f, Poll: time.Millisecond, Timeout: time.Second}
	_, err := u.Run(context.Background(), plan3())
	var stop *StepError
	if !errors.As(err, &stop) || stop.Step.Kind != StepStepDown || !strings.Contains(stop.What, "permission denied") {
		t.Fatalf("got %v", err)
	}
	if slices.Contains(f.log, "delete vault-0 u0") {
		t.Error("the leader was restarted although it never stepped down")
	}
}
