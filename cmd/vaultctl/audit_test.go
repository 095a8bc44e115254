package main

import (
	"bytes"
	"encoding/json"
	"os"
	"strings"
	"testing"
)

// A log with findings exits 1 and names them; one without exits 0; stdin works.
func TestAuditAnalyzeExitCodesAndOutput(t *testing.T) {
	real, err := os.ReadFile("../../auditlog/testdata/vault-1.21.log")
	if err != nil {
		t.Fatal(err)
	}
	var out, errb bytes.Buffer
	code := run([]string{"audit", "analyze", "-o", "json", "-"}, bytes.NewReader(real), &out, &errb)
	var doc struct {
		Command  string `json:"command"`
		OK       bool   `json:"ok"`
		Findings []struct {
			Code string `json:"code"`
		} `json:"findings"`
		Report struct {
			AuthFailures []struct {
				Role string `json:"role"`
			} `json:"authFailures"`
		} `json:"report"`
	}
	if err := json.Unmarshal(out.Bytes(), &doc); err != nil || code != 1 || doc.OK || doc.Command != "audit analyze" || len(doc.Findings) == 0 || len(doc.Report.AuthFailures) == 0 {
		t.Fatalf("exit %d, %v\n%s\n%s", code, err, out.String(), errb.String())
	}

	out.Reset()
	code = run([]string{"audit", "analyze", "-"}, bytes.NewReader(real), &out, &errb)
	for _, want := range []string{"Failed logins", "service account name not authorized", "hmac:", "Denied by policy", "secret/data/other/x", "default,ro", "warning: 5 failed logins"} {
		if !strings.Contains(out.String(), want) {
			t.Errorf("text report lacks %q:\n%s", want, out.String())
		}
	}

	// One successful read, inside working hours in Paris: nothing to report.
	clean := `{"auth":{"display_name":"kubernetes-prod-web-sa","metadata":{"service_account_name":"web-sa","service_account_namespace":"prod"},"policies":["default"]},"request":{"operation":"read","path":"secret/data/prod/db","mount_type":"kv","remote_address":"10.0.0.1"},"response":{"data":{"data":{}}},"time":"2026-12-01T10:00:00.000000001Z","type":"response"}` + "\n"
	out.Reset()
	code = run([]string{"audit", "analyze", "--hours", "08:00-19:00", "--tz", "Europe/Paris", "-"}, strings.NewReader(clean), &out, &errb)
	if code != 0 || !strings.Contains(out.String(), "Nothing to report.") {
		t.Fatalf("clean log: exit %d\n%s", code, out.String())
	}
}
