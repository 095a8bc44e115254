package main

import (
	"bytes"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/waves"
)

// The text form shows each wave's state in the table, then every namespace and gate with its
// evidence, and a failing gate's fix.
func TestPrintWavesStatus(t *testing.T) {
	st := &waves.Status{Next: "ci-guard", Waves: []waves.WaveStatus{
		{Week: 1, Name: "pilot", Kind: waves.KindNamespaces, Workloads: []string{"tools/Deployment/wiki"}, Complete: true,
			States: []waves.NamespaceStatus{{Namespace: "tools", State: waves.Verified, Detail: "1 workload verified"}},
			Gates:  []waves.GateResult{{Gate: "injector-healthy", OK: true, Evidence: "injector: 2/2 available"}}},
		{Week: 2, Name: "ci-guard", Kind: waves.KindGuard, Detail: "gates not holding: check-passing",
			Gates: []waves.GateResult{
				{Gate: "check-passing", Evidence: "1 finding", Fix: "delete the Secret"},
				{Gate: "admission-policy", Outcome: true, Evidence: "not installed"},
			}},
	}}
	var b bytes.Buffer
	if err := printWavesStatus(&b, st); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"1     pilot     tools/Deployment/wiki  complete  1/1 pass",
		"2     ci-guard  -                      next      0/2 pass",
		"namespace tools: verified (1 workload verified)",
		"gate injector-healthy: pass: injector: 2/2 available",
		"gate check-passing: fail: 1 finding\n    fix: delete the Secret",
		"gate admission-policy: todo: not installed",
		"Next: ci-guard",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("status text lacks %q:\n%s", want, out)
		}
	}
}

func TestPrintWaveRunBlocked(t *testing.T) {
	var b bytes.Buffer
	printWaveRun(&b, &waves.RunResult{Wave: "staging", Blocked: []waves.GateResult{{Gate: "previous-wave-complete", Evidence: "wave ci-guard is not complete", Fix: "run vaultctl migrate wave ci-guard"}}})
	if out := b.String(); !strings.Contains(out, "Wave staging cannot start: 1 gate failing.") || !strings.Contains(out, "fix: run vaultctl migrate wave ci-guard") {
		t.Errorf("blocked run text:\n%s", out)
	}
}
