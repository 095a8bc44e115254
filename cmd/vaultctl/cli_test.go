package main

import (
	"bytes"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"net"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"
)

// fakeAPI is a Kubernetes API server that answers /version and the checkpoints ConfigMap, 404s
// everything else, and records every request.
type fakeAPI struct {
	*httptest.Server
	mu          sync.Mutex
	requests    []string
	checkpoints map[string]string // the ConfigMap's data; nil: no ConfigMap
}

func newFakeAPI(t *testing.T) *fakeAPI {
	t.Helper()
	f := &fakeAPI{}
	f.Server = httptest.NewTLSServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		f.mu.Lock()
		f.requests = append(f.requests, r.Method+" "+r.URL.Path)
		data := f.checkpoints
		f.mu.Unlock()
		w.Header().Set("Content-Type", "application/json")
		switch {
		case r.Method == http.MethodGet && r.URL.Path == "/version":
			fmt.Fprint(w, `{"major":"1","minor":"36","gitVersion":"v1.36.3"}`)
		case r.Method == http.MethodGet && r.URL.Path == "/api/v1/namespaces/vault-unit/configmaps/vaultctl-checkpoints" && data != nil:
			_ = json.NewEncoder(w).Encode(map[string]any{"apiVersion": "v1", "kind": "ConfigMap",
				"metadata": map[string]any{"name": "vaultctl-checkpoints", "namespace": "vault-unit"}, "data": data})
		default:
			w.WriteHeader(http.StatusNotFound)
			fmt.Fprint(w, `{"apiVersion":"v1","kind":"Status","status":"Failure","reason":"NotFound","code":404,"message":"not found"}`)
		}
	}))
	t.Cleanup(f.Close)
	return f
}

func (f *fakeAPI) seen() []string {
	f.mu.Lock()
	defer f.mu.Unlock()
	return append([]string(nil), f.requests...)
}

// refusedAddr is an address nothing listens on.
func refusedAddr(t *testing.T) string {
	t.Helper()
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	addr := l.Addr().String()
	l.Close()
	return addr
}

// oneJSONDocument decodes stdout as exactly one JSON object.
func oneJSONDocument(stdout string) (map[string]any, error) {
	dec := json.NewDecoder(strings.NewReader(stdout))
	var doc map[string]any
	if err := dec.Decode(&doc); err != nil {
		return nil, fmt.Errorf("stdout is not a JSON document: %v", err)
	}
	var extra any
	if err := dec.Decode(&extra); !errors.Is(err, io.EOF) {
		return nil, fmt.Errorf("stdout holds more than one JSON document (%v)", err)
	}
	return doc, nil
}

// humanText fails when stderr holds anything that looks like JSON.
func humanText(stderr string) error {
	for _, line := range strings.Split(stderr, "\n") {
		if l := strings.TrimSpace(line); strings.HasPrefix(l, "{") || strings.HasPrefix(l, `"`) {
			return fmt.Errorf("stderr holds JSON: %q", line)
		}
	}
	return nil
}

// The Done-when: every command, with -o json, in a situation where it fails, prints
// exactly one JSON document on stdout with "command", "ok": false, an "error" and "warnings" (an
// array), while stderr holds only human text.
func TestEveryCommandFailingWithJSONPrintsOneDocument(t *testing.T) {
	unreachable := unitConfig(t, refusedAddr(t))
	dir := t.TempDir()
	invalid := filepath.Join(dir, "invalid.yaml")
	if err := os.WriteFile(invalid, []byte("apiVersion: vaultctl.io/v1alpha1\nkind: Platform\nvault:\n  replicas: 2\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	// No cluster.kubeconfig: the one KUBECONFIG names does not exist.
	noKubeconfig := filepath.Join(dir, "nokubeconfig.yaml")
	body, err := os.ReadFile(unreachable)
	if err != nil {
		t.Fatal(err)
	}
	var kept []string
	for _, l := range strings.Split(string(body), "\n") {
		if !strings.HasPrefix(l, "cluster:") {
			kept = append(kept, l)
		}
	}
	if err := os.WriteFile(noKubeconfig, []byte(strings.Join(kept, "\n")), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "nonexistent"))
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")

	for _, tc := range []struct {
		args    []string
		command string
		code    int
	}{
		{[]string{"version", "extra"}, "version", 2},
		{[]string{"-o", "json", "aply"}, "vaultctl", 2},
		{[]string{"config", "valdate"}, "config", 2},
		{[]string{"config", "validate", "-c", invalid}, "config validate", 2},
		{[]string{"config", "validate", "-c", filepath.Join(dir, "missing.yaml")}, "config validate", 2},
		{[]string{"config", "schema", "extra"}, "config schema", 2},
		{[]string{"plan", "-c", unreachable}, "plan", 1},
		{[]string{"plan", "-c", noKubeconfig}, "plan", 1},
		{[]string{"plan", "-c", unreachable, "--only", "nosuch"}, "plan", 2},
		{[]string{"plan", "-c", invalid}, "plan", 2},
		{[]string{"plan", "--bogus"}, "plan", 2},
		{[]string{"apply", "-c", unreachable}, "apply", 1},
		{[]string{"apply", "-c", invalid}, "apply", 2},
		{[]string{"apply", "phse"}, "apply", 2},
		{[]string{"apply", "phase", "-c", unreachable}, "apply phase", 2},
		{[]string{"apply", "phase", "nosuch", "-c", unreachable}, "apply phase", 2},
		{[]string{"apply", "phase", "kms", "-c", unreachable}, "apply phase", 1},
		{[]string{"status", "-c", unreachable}, "status", 1},
		{[]string{"status", "-c", invalid}, "status", 2},
		{[]string{"recovery-keys", "--out", filepath.Join(dir, "keys.json"), "-c", unreachable}, "recovery-keys", 1},
		{[]string{"recovery-keys", "-c", unreachable}, "recovery-keys", 2},
		{[]string{"check"}, "check", 2},
		{[]string{"check", "--explain", "nosuch"}, "check", 2},
		{[]string{"init", "--non-interactive", "-f", filepath.Join(dir, "new.yaml")}, "init", 2},
		{[]string{"completion", "pwsh"}, "completion", 2},
		{[]string{"audit", "anlyze"}, "audit", 2},
		{[]string{"audit", "analyze"}, "audit analyze", 2},
		{[]string{"audit", "analyze", filepath.Join(dir, "missing.log")}, "audit analyze", 2},
		{[]string{"audit", "analyze", "--since", "yesterday", "-"}, "audit analyze", 2},
		{[]string{"audit", "analyze", "--hours", "8-19", "-"}, "audit analyze", 2},
		{[]string{"audit", "analyze", "--from-pods", "x.log"}, "audit analyze", 2},
		{[]string{"doctor", "-c", unreachable}, "doctor", 1},
		{[]string{"doctor", "-c", invalid}, "doctor", 2},
		{[]string{"leases", "-c", unreachable}, "leases", 1},
		{[]string{"leases", "-c", invalid}, "leases", 2},
	} {
		args := tc.args
		if args[0] != "-o" {
			args = append(append([]string{}, args...), "-o", "json")
		}
		code, stdout, stderr := runCLI(args...)
		doc, err := oneJSONDocument(stdout)
		if err != nil {
			t.Errorf("%v: %v\nstdout:\n%s\nstderr:\n%s", args, err, stdout, stderr)
			continue
		}
		msg, _ := doc["error"].(string)
		warnings, isList := doc["warnings"].([]any)
		if code != tc.code || doc["command"] != tc.command || doc["ok"] != false || msg == "" || !isList || warnings == nil {
			t.Errorf("%v: exit %d (want %d), command %v (want %q), ok %v, error %q, warnings %#v",
				args, code, tc.code, doc["command"], tc.command, doc["ok"], msg, doc["warnings"])
		}
		if err := humanText(stderr); err != nil {
			t.Errorf("%v: %v", args, err)
		}
	}
}

// A typo under a group must fail like one at the top level, not print help and exit 0.
func TestMistypedSubcommandExitsTwoWithSuggestion(t *testing.T) {
	for _, tc := range []struct{ args, want []string }{
		{[]string{"config", "valdate"}, []string{`unknown command "valdate" for "vaultctl config"`, "Did you mean this?", "validate"}},
		{[]string{"apply", "phse"}, []string{`unknown command "phse" for "vaultctl apply"`, "phase"}},
		{[]string{"completion", "bsh"}, []string{`unknown command "bsh" for "vaultctl completion"`, "bash"}},
		{[]string{"aply"}, []string{`unknown command "aply" for "vaultctl"`, "apply"}},
	} {
		code, stdout, stderr := runCLI(tc.args...)
		if code != 2 || stdout != "" {
			t.Errorf("%v: exit %d, stdout %q", tc.args, code, stdout)
		}
		for _, w := range tc.want {
			if !strings.Contains(stderr, w) {
				t.Errorf("%v: stderr lacks %q:\n%s", tc.args, w, stderr)
			}
		}
	}
	// A group alone still shows its help.
	if code, stdout, _ := runCLI("config"); code != 0 || !strings.Contains(stdout, "validate") {
		t.Errorf("vaultctl config: exit %d\n%s", code, stdout)
	}
}

func TestGlobalOutputAcceptsOnlyTextAndJSON(t *testing.T) {
	for _, args := range [][]string{{"-o", "xml", "version"}, {"version", "--output=yaml"}, {"-o", "sarif", "status"}} {
		code, stdout, stderr := runCLI(args...)
		if code != 2 || stdout != "" || !strings.Contains(stderr, "--output must be text or json") {
			t.Errorf("%v: exit %d\nstdout:\n%s\nstderr:\n%s", args, code, stdout, stderr)
		}
	}
	// check keeps its own formats.
	m := filepath.Join(t.TempDir(), "cm.yaml")
	if err := os.WriteFile(m, []byte("apiVersion: v1\nkind: ConfigMap\nmetadata: {name: x, namespace: default}\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	if code, stdout, stderr := runCLI("check", "-o", "sarif", m); code != 0 || !strings.Contains(stdout, `"version": "2.1.0"`) {
		t.Errorf("check -o sarif: exit %d\n%s%s", code, stdout, stderr)
	}
	if code, stdout, _ := runCLI("-o", "json", "version"); code != 0 || !strings.Contains(stdout, `"version"`) {
		t.Errorf("-o json version: exit %d\n%s", code, stdout)
	}
}

func TestPhaseListsInApplyPhaseAndHelp(t *testing.T) {
	const phaseList = "preflight, kms, tls, server, initialize, kubernetes-auth, bootstrap, raft, injector, databases, policies, roles, network-policies, audit"
	code, stdout, stderr := runCLI("apply", "phase")
	if code != 2 || strings.Contains(stderr, "accepts 1 arg") || !strings.Contains(stderr, "phases are: "+phaseList) {
		t.Errorf("apply phase without a name: exit %d\n%s%s", code, stdout, stderr)
	}
	for _, args := range [][]string{{"plan", "--help"}, {"apply", "--help"}, {"apply", "phase", "--help"}} {
		code, stdout, _ := runCLI(args...)
		if code != 0 || !strings.Contains(stdout, phaseList) {
			t.Errorf("%v does not list the phases:\n%s", args, stdout)
		}
	}
}

func TestPlanPruneListsWhatApplyPruneWouldDelete(t *testing.T) {
	_, plan, _ := runCLI("plan", "--help")
	if !strings.Contains(plan, "also list what apply --prune would delete") || !strings.Contains(plan, "plan deletes nothing") {
		t.Errorf("plan --help must say --prune only lists:\n%s", plan)
	}
	_, apply, _ := runCLI("apply", "--help")
	if !strings.Contains(apply, "delete the policies, roles, audit devices and NetworkPolicies vaultctl created") {
		t.Errorf("apply --help must say --prune deletes:\n%s", apply)
	}
	// That plan builds its phases with Prune is action's TestPlanAndApplyBuildThePhasesWithPrune.
}

// A failed phase is explained once, in its block on stdout, not again on stderr.
func TestFailingPlanPrintsTheErrorOnce(t *testing.T) {
	cfg := unitConfig(t, refusedAddr(t))
	for _, cmd := range []string{"plan", "apply"} {
		code, stdout, stderr := runCLI(cmd, "-c", cfg)
		if n := strings.Count(stdout+stderr, "cannot reach the Kubernetes API"); code != 1 || n != 1 {
			t.Errorf("%s: exit %d, the error appears %d times\nstdout:\n%s\nstderr:\n%s", cmd, code, n, stdout, stderr)
		}
		if !strings.Contains(stdout, cmd+" failed. Fix the error above") {
			t.Errorf("%s: no closing line:\n%s", cmd, stdout)
		}
	}
}

// firstWrite records when something was first written.
type firstWrite struct {
	mu    sync.Mutex
	buf   bytes.Buffer
	first chan struct{}
}

func (w *firstWrite) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	if w.buf.Len() == 0 && len(p) > 0 {
		close(w.first)
	}
	return w.buf.Write(p)
}

func (w *firstWrite) String() string {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.buf.String()
}

// notTLS answers a TLS client with plain text, which it refuses at once (a closed connection
// would be retried for 10s).
func notTLS(c net.Conn) {
	_, _ = c.Write([]byte("HTTP/1.0 400 Bad Request\r\n\r\n"))
	c.Close()
}

// An API server that accepts TCP and never completes TLS: plan shows preflight running at
// once, before anything waits on the cluster, and the error names the API server.
func TestHangingAPIServerShowsPreflightAtOnce(t *testing.T) {
	l, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	defer l.Close()
	var (
		mu     sync.Mutex
		conns  []net.Conn
		hungUp bool
	)
	go func() {
		for {
			c, err := l.Accept()
			if err != nil {
				return
			}
			mu.Lock()
			if hungUp {
				notTLS(c)
			} else {
				conns = append(conns, c)
			}
			mu.Unlock()
		}
	}()
	hangUp := func() {
		mu.Lock()
		defer mu.Unlock()
		hungUp = true
		for _, c := range conns {
			notTLS(c)
		}
	}
	cfg := unitConfigAt(t, "https://"+l.Addr().String(), "http://"+refusedAddr(t), "")
	stdout := &firstWrite{first: make(chan struct{})}
	var stderr bytes.Buffer
	done := make(chan int, 1)
	go func() { done <- run([]string{"plan", "-c", cfg}, strings.NewReader(""), stdout, &stderr) }()
	select {
	case <-stdout.first:
	case <-time.After(3 * time.Second):
		t.Errorf("nothing on screen after 3s while the API server hangs")
	}
	if got := stdout.String(); !strings.HasPrefix(got, "--> preflight:") {
		t.Errorf("the first line must be preflight's, got %q", got)
	}
	hangUp() // the handshake fails now, without waiting for its timeout
	code := <-done
	if code != 1 || !strings.Contains(stdout.String(), "cannot reach the Kubernetes API at https://"+l.Addr().String()) {
		t.Errorf("exit %d\nstdout:\n%s\nstderr:\n%s", code, stdout, stderr.String())
	}
}

// apply writes nothing, not even the namespace or its Lease, before preflight passed (the
// action's own test is TestFailedPreflightWritesNothingAndLeavesTheRestNotRun).
func TestApplyTakesNoLeaseBeforePreflight(t *testing.T) {
	api := newFakeAPI(t)
	cfg := unitConfigAt(t, api.URL, "http://"+refusedAddr(t), "") // KMS down: preflight fails
	code, stdout, stderr := runCLI("apply", "-c", cfg, "-o", "json")
	if len(api.seen()) == 0 {
		t.Fatal("the fake API server saw nothing: the test proves nothing")
	}
	for _, r := range api.seen() {
		if strings.Contains(r, "/leases") || strings.Contains(r, "/configmaps") || strings.HasPrefix(r, "POST /api/v1/namespaces") {
			t.Errorf("apply touched %s before preflight passed", r)
		}
	}
	if code != 1 {
		t.Fatalf("exit %d\n%s%s", code, stdout, stderr)
	}
	doc, err := oneJSONDocument(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if phases, _ := doc["phases"].([]any); len(phases) < 2 || phases[0].(map[string]any)["status"] != "failed" || phases[1].(map[string]any)["status"] != "not run" {
		t.Fatalf("want preflight failed, the rest not run: %s", stdout)
	}
}

func TestStatusJSONHasTheEnvelopeAndDatedSummaries(t *testing.T) {
	api := newFakeAPI(t)
	at := time.Date(2026, 11, 30, 10, 0, 0, 0, time.UTC)
	cp, _ := json.Marshal(map[string]any{"phase": "preflight", "inputHash": "x", "vaultctlVersion": "v0.1.0", "time": at,
		"summary": "Vault 1.21.1 at https://vault:8200 (uninitialized)"})
	api.checkpoints = map[string]string{"preflight": string(cp)}
	cfg := unitConfigAt(t, api.URL, "http://"+refusedAddr(t), "")

	code, stdout, stderr := runCLI("status", "-c", cfg, "-o", "json")
	doc, err := oneJSONDocument(stdout)
	if err != nil {
		t.Fatalf("%v\n%s", err, stderr)
	}
	// No Vault pods in the fake cluster: its health cannot be read, so ok is false.
	if code != 1 || doc["command"] != "status" || doc["ok"] != false || doc["error"] == "" || doc["vaultError"] == "" {
		t.Errorf("envelope: exit %d %s", code, stdout)
	}
	if w, ok := doc["warnings"].([]any); !ok || w == nil {
		t.Errorf("warnings must be an array: %s", stdout)
	}
	phases, _ := doc["phases"].([]any)
	if len(phases) == 0 {
		t.Fatalf("no phases: %s", stdout)
	}
	pre := phases[0].(map[string]any)
	if pre["phase"] != "preflight" || pre["applied"] != true || pre["summary"] != "Vault 1.21.1 at https://vault:8200 (uninitialized)" || pre["summaryAsOf"] != "2026-11-30T10:00:00Z" {
		t.Errorf("preflight row: %v", pre)
	}
	if kms := phases[1].(map[string]any); kms["applied"] != false || kms["summary"] != "" {
		t.Errorf("kms row: %v", kms)
	}

	_, stdout, _ = runCLI("status", "-c", cfg)
	want := "as of " + at.Local().Format("2006-01-02 15:04") + ": Vault 1.21.1 at https://vault:8200 (uninitialized)"
	if !strings.Contains(stdout, want) {
		t.Errorf("the table must date the summary (%q):\n%s", want, stdout)
	}
}

func TestJSONWarningsAreAlwaysAnArray(t *testing.T) {
	api := newFakeAPI(t)
	clean := unitConfigAt(t, api.URL, "http://"+refusedAddr(t), "")
	warned := unitConfigAt(t, api.URL, "http://"+refusedAddr(t), "  replicas: 1")

	code, stdout, _ := runCLI("config", "validate", "-c", clean, "-o", "json")
	if code != 0 || !strings.Contains(stdout, `"warnings": []`) || !strings.Contains(stdout, `"ok": true`) {
		t.Errorf("a clean config: exit %d\n%s", code, stdout)
	}
	code, stdout, _ = runCLI("config", "validate", "-c", warned, "-o", "json")
	if code != 0 || !strings.Contains(stdout, "1 replica gives no high availability") {
		t.Errorf("a warned config: exit %d\n%s", code, stdout)
	}
	// plan carries the config's warnings in its document, not only on stderr.
	_, stdout, stderr := runCLI("plan", "-c", warned, "-o", "json")
	doc, err := oneJSONDocument(stdout)
	if err != nil {
		t.Fatal(err)
	}
	if w, _ := doc["warnings"].([]any); len(w) != 1 || !strings.Contains(fmt.Sprint(w[0]), "vault.replicas: 1 replica gives no high availability") {
		t.Errorf("plan warnings: %v", doc["warnings"])
	}
	if strings.Contains(stderr, "warning:") {
		t.Errorf("with -o json the warnings are in the document:\n%s", stderr)
	}
	// A config with errors still has "warnings", an array (config.Load returns no warnings
	// with errors yet; configWarnings is where they will be read from).
	broken := unitConfigAt(t, api.URL, "http://"+refusedAddr(t), "  replicas: 1\n  bogusKey: 1")
	code, stdout, _ = runCLI("config", "validate", "-c", broken, "-o", "json")
	if doc, err := oneJSONDocument(stdout); code != 2 || err != nil || doc["warnings"] == nil || doc["ok"] != false || !strings.Contains(stdout, "bogusKey") {
		t.Errorf("broken config: exit %d %v\n%s", code, err, stdout)
	}
}

func TestConfigValidateCountsInGoodEnglish(t *testing.T) {
	cfg := unitConfigAt(t, "https://127.0.0.1:1", "http://127.0.0.1:1", "")
	body, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	policy := "policies:\n  - name: app\n    rules:\n      - {path: secret/production/db, capabilities: [read]}\n"
	if err := os.WriteFile(cfg, append(body, policy...), 0o600); err != nil {
		t.Fatal(err)
	}
	code, stdout, stderr := runCLI("config", "validate", "-c", cfg)
	if code != 0 || !strings.Contains(stdout, "(1 policy, 0 roles, 0 migration waves)") {
		t.Errorf("exit %d\n%s%s", code, stdout, stderr)
	}
}
