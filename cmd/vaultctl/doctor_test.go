package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/doctor"
	"github.com/vaultctl/vaultctl/leases"
)

// Usage errors are found before anything is contacted, and -o json still prints one document.
func TestDoctorAndLeasesUsageErrors(t *testing.T) {
	for _, tc := range []struct {
		args []string
		want string
	}{
		{[]string{"doctor", "cronjob/x", "-o", "json"}, "KIND/NAME"},
		{[]string{"doctor", "a", "b"}, "accepts at most 1 arg"},
		{[]string{"leases", "--revoke-prefix", "database/creds/app", "-o", "json"}, "--yes"},
		{[]string{"leases", "--revoke-orphaned"}, "--yes"},
		{[]string{"leases", "--revoke-prefix", "/", "--yes"}, "needs a prefix"},
	} {
		var out, errb bytes.Buffer
		code := run(tc.args, strings.NewReader(""), &out, &errb)
		if code != exitUsage || !strings.Contains(errb.String(), tc.want) {
			t.Errorf("%v: exit %d, stderr %q; want 2 naming %q", tc.args, code, errb.String(), tc.want)
		}
		if outputArg(tc.args) == "json" {
			var doc map[string]any
			if err := json.Unmarshal(out.Bytes(), &doc); err != nil || doc["ok"] != false {
				t.Errorf("%v: stdout is not the failure document: %q", tc.args, out.String())
			}
		}
	}
}

func TestPrintDoctorAndLeases(t *testing.T) {
	var b bytes.Buffer
	rep := &doctor.Report{Pods: []string{"app/web-1"}, Findings: []doctor.Finding{
		{Severity: doctor.Error, Code: doctor.CodeSANotBound, Object: "Pod app/web-1", Message: "not bound", Evidence: []string{"bound: [x]"}, Fix: "add web"},
		{Severity: doctor.Info, Code: doctor.CodeNoReloadCommand, Object: "Pod app/web-1", Message: "no command", Evidence: []string{}, Fix: "add one"},
	}}
	if err := printDoctor(&b, rep); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"✗ Pod app/web-1 [service-account-not-bound] not bound", "evidence: bound: [x]", "fix:      add web", "1 problem(s) found in 1 pod(s) (app/web-1)"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("doctor text lacks %q:\n%s", want, b.String())
		}
	}
	b.Reset()
	now := time.Date(2026, 12, 1, 12, 0, 0, 0, time.UTC)
	res := leasesResult{Total: 3, Prefixes: []leases.Prefix{{Prefix: "database/creds/app/", Count: 3, OldestIssue: now.Add(-2 * time.Hour),
		NextExpiry: now.Add(time.Minute), LastExpiry: now.Add(time.Hour), Warnings: []string{"too old"}}},
		Revoked: []leases.Revocation{{What: "prefix database/creds/app/", Count: 3, Done: true}}}
	if err := printLeases(&b, res, now); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"prefix database/creds/app/: 3, revoked", "database/creds/app/  3      2h0m0s ago", "in 1m0s to 1h0m0s", "too old", "3 leases under all prefixes"} {
		if !strings.Contains(b.String(), want) {
			t.Errorf("leases text lacks %q:\n%s", want, b.String())
		}
	}
}
