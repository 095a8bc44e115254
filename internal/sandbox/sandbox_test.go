package sandbox

import (
	"crypto/x509"
	"encoding/pem"
	"errors"
	"net"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"strconv"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/internal/testreq"
)

func TestPortRange(t *testing.T) {
	for _, tc := range []struct {
		ephemeral, lo, hi int
	}{
		{32768, 20000, 32768},
		{49152, 20000, 49152},
		{20500, 61000, 65000}, // no room below a huge ephemeral range
		{1024, 61000, 65000},
	} {
		lo, hi := portRange(tc.ephemeral)
		if lo != tc.lo || hi != tc.hi {
			t.Errorf("portRange(%d) = [%d,%d), want [%d,%d)", tc.ephemeral, lo, hi, tc.lo, tc.hi)
		}
	}
	for in, want := range map[string]int{"32768\t60999\n": 32768, "1024 65000": 1024, "": defaultEphemeral, "x y": defaultEphemeral, "70000 80000": defaultEphemeral} {
		if got := parseEphemeralStart(in); got != want {
			t.Errorf("parseEphemeralStart(%q) = %d, want %d", in, got, want)
		}
	}
}

func TestReservePorts(t *testing.T) {
	names := portNames(true, true)
	ps, err := reservePorts(names, nil)
	if err != nil {
		t.Fatal(err)
	}
	defer ps.releaseAll()
	lo, hi := portRange(ephemeralStart())
	seen := map[int]string{}
	for _, n := range names {
		p := ps.port(n)
		if p < lo || p >= hi {
			t.Errorf("%s: port %d outside [%d,%d)", n, p, lo, hi)
		}
		if other, dup := seen[p]; dup {
			t.Errorf("port %d given to both %s and %s", p, other, n)
		}
		seen[p] = n
		// Held: nobody else can bind it until released.
		if l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p))); err == nil {
			l.Close()
			t.Errorf("%s: port %d not held", n, p)
		}
	}
	if len(ps.snapshot()) != len(names) {
		t.Errorf("snapshot has %d ports, want %d", len(ps.snapshot()), len(names))
	}

	// release frees exactly the named port.
	p := ps.port(compEtcd)
	ps.release(compEtcd)
	l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", itoa(p)))
	if err != nil {
		t.Fatalf("released port %d not bindable: %v", p, err)
	}

	// A preferred (recorded) port that is busy is an error naming it.
	_, err = reservePorts([]string{compEtcd}, map[string]int{compEtcd: p})
	if err == nil || !strings.Contains(err.Error(), itoa(p)) || !strings.Contains(err.Error(), compEtcd) {
		t.Errorf("busy preferred port: err = %v", err)
	}
	l.Close()
	// ...and once free it is reused as is.
	ps2, err := reservePorts([]string{compEtcd}, map[string]int{compEtcd: p})
	if err != nil {
		t.Fatal(err)
	}
	defer ps2.releaseAll()
	if ps2.port(compEtcd) != p {
		t.Errorf("preferred port not reused: got %d want %d", ps2.port(compEtcd), p)
	}
}

func itoa(n int) string { return strconv.Itoa(n) }

func TestPKI(t *testing.T) {
	dir := t.TempDir()
	p, err := ensurePKI(dir)
	if err != nil {
		t.Fatal(err)
	}
	ca := readCert(t, p.cert("ca"))
	if !ca.IsCA {
		t.Fatal("CA is not a CA")
	}
	roots := x509.NewCertPool()
	roots.AddCert(ca)

	api := readCert(t, p.cert("apiserver"))
	for _, name := range []string{"localhost", "kubernetes", "kubernetes.default", "kubernetes.default.svc", "kubernetes.default.svc.cluster.local"} {
		if _, err := api.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("apiserver cert for %s: %v", name, err)
		}
	}
	for _, ip := range []string{"127.0.0.1", "10.0.0.1"} {
		if err := api.VerifyHostname(ip); err != nil {
			t.Errorf("apiserver cert for %s: %v", ip, err)
		}
	}

	vault := readCert(t, p.cert("vault"))
	for _, name := range []string{"127.0.0.1", "localhost", "vault-0", "vault-2.vault-internal", "vault-1.vault-internal.vault.svc",
		"vault.vault.svc", "vault-active.vault.svc.cluster.local", "vault-internal"} {
		if _, err := vault.Verify(x509.VerifyOptions{DNSName: name, Roots: roots}); err != nil {
			t.Errorf("vault cert for %s: %v", name, err)
		}
	}
	if err := vault.VerifyHostname("vault-3"); err == nil {
		t.Error("vault cert unexpectedly valid for vault-3")
	}

	admin := readCert(t, p.cert("admin"))
	if !slices.Contains(admin.Subject.Organization, "system:masters") {
		t.Errorf("admin O = %v, want system:masters", admin.Subject.Organization)
	}
	if _, err := admin.Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("admin client cert: %v", err)
	}
	for stem, cn := range map[string]string{"kube-controller-manager": "system:kube-controller-manager", "kube-scheduler": "system:kube-scheduler"} {
		if c := readCert(t, p.cert(stem)); c.Subject.CommonName != cn {
			t.Errorf("%s CN = %q, want %q", stem, c.Subject.CommonName, cn)
		}
	}

	// Private keys are 0600.
	for _, f := range []string{p.key("ca"), p.key("admin"), p.key("vault"), p.saKey()} {
		fi, err := os.Stat(f)
		if err != nil {
			t.Fatal(err)
		}
		if fi.Mode().Perm() != 0o600 {
			t.Errorf("%s mode %v, want 0600", f, fi.Mode().Perm())
		}
	}
	sa, _ := os.ReadFile(p.saKey())
	if b, _ := pem.Decode(sa); b == nil || b.Type != "RSA PRIVATE KEY" {
		t.Error("sa.key is not an RSA key")
	}

	// A second run keeps everything (a restarted sandbox keeps its trust and token key).
	caBefore, _ := os.ReadFile(p.cert("ca"))
	saBefore, _ := os.ReadFile(p.saKey())
	os.Remove(p.cert("kwok"))
	if _, err := ensurePKI(dir); err != nil {
		t.Fatal(err)
	}
	caAfter, _ := os.ReadFile(p.cert("ca"))
	saAfter, _ := os.ReadFile(p.saKey())
	if string(caBefore) != string(caAfter) || string(saBefore) != string(saAfter) {
		t.Error("ensurePKI replaced an existing CA or SA key")
	}
	if _, err := readCert(t, p.cert("kwok")).Verify(x509.VerifyOptions{Roots: roots, KeyUsages: []x509.ExtKeyUsage{x509.ExtKeyUsageClientAuth}}); err != nil {
		t.Errorf("re-issued kwok cert not signed by the existing CA: %v", err)
	}
}

func readCert(t *testing.T, path string) *x509.Certificate {
	t.Helper()
	b, err := os.ReadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	block, _ := pem.Decode(b)
	if block == nil {
		t.Fatalf("%s: no PEM", path)
	}
	c, err := x509.ParseCertificate(block.Bytes)
	if err != nil {
		t.Fatal(err)
	}
	return c
}

func TestStateRoundTrip(t *testing.T) {
	dir := t.TempDir()
	s := &Sandbox{
		Dir: dir, Kubeconfig: filepath.Join(dir, "kubeconfig"), APIServerURL: "https://127.0.0.1:1234",
		CACertFile: filepath.Join(dir, "pki/ca.crt"), VaultAddrs: []string{"https://127.0.0.1:1", "https://127.0.0.1:2", "https://127.0.0.1:3"},
		KMSEndpoint: "http://127.0.0.1:5", KMSRegion: "us-east-1", KMSKeyAlias: KMSKeyAlias,
		PostgresURL: "postgres://u:p@127.0.0.1:6/postgres", Ports: map[string]int{"etcd": 7},
		Processes: []Process{{Name: "etcd", PID: 42, StartTime: 99, Port: 7, Log: "x.log"}},
		StartedAt: time.Unix(1700000000, 0).UTC(), ReadyAfter: 1500 * time.Millisecond,
	}
	if err := s.save(); err != nil {
		t.Fatal(err)
	}
	fi, err := os.Stat(filepath.Join(dir, stateFile))
	if err != nil {
		t.Fatal(err)
	}
	if fi.Mode().Perm() != 0o600 {
		t.Errorf("state.json mode %v, want 0600 (it holds the Postgres password)", fi.Mode().Perm())
	}
	got, err := Load(dir)
	if err != nil {
		t.Fatal(err)
	}
	if got.APIServerURL != s.APIServerURL || got.PostgresURL != s.PostgresURL || !slices.Equal(got.VaultAddrs, s.VaultAddrs) ||
		got.Ports["etcd"] != 7 || len(got.Processes) != 1 || got.Processes[0] != s.Processes[0] ||
		!got.StartedAt.Equal(s.StartedAt) || got.ReadyAfter != s.ReadyAfter || got.Version != stateVersion {
		t.Errorf("round trip mismatch:\n got %+v\nwant %+v", got, s)
	}

	if _, err := Load(t.TempDir()); !errors.Is(err, ErrNoSandbox) {
		t.Errorf("Load(empty dir) = %v, want ErrNoSandbox", err)
	}
	os.WriteFile(filepath.Join(dir, stateFile), []byte(`{"version": 99}`), 0o600)
	if _, err := Load(dir); err == nil || !strings.Contains(err.Error(), "version 99") {
		t.Errorf("Load(future version) = %v", err)
	}
}

func TestEnvAndShellExports(t *testing.T) {
	s := &Sandbox{
		Dir: "/tmp/sb", Kubeconfig: "/tmp/sb/kubeconfig", CACertFile: "/tmp/sb/pki/ca.crt", VaultCACert: "/tmp/sb/pki/ca.crt",
		VaultAddrs:  []string{"https://127.0.0.1:8200", "https://127.0.0.1:8210", "https://127.0.0.1:8220"},
		KMSEndpoint: "http://127.0.0.1:9000", KMSRegion: "us-east-1",
		PostgresURL: "postgres://vaultadmin:pw@127.0.0.1:5432/postgres?sslmode=disable",
	}
	env := s.Env()
	want := map[string]string{
		"KUBECONFIG":            "/tmp/sb/kubeconfig",
		"VAULT_ADDR":            "https://127.0.0.1:8200",
		"VAULT_CACERT":          "/tmp/sb/pki/ca.crt",
		"AWS_ENDPOINT_URL_KMS":  "http://127.0.0.1:9000",
		"AWS_REGION":            "us-east-1",
		"AWS_ACCESS_KEY_ID":     dummyAccessKeyID,
		"AWS_SECRET_ACCESS_KEY": dummySecretKey,
		"VAULTCTL_PG_URL":       s.PostgresURL,
		"VAULTCTL_SANDBOX_DIR":  "/tmp/sb",
	}
	got := map[string]string{}
	for _, kv := range env {
		k, v, ok := strings.Cut(kv, "=")
		if !ok {
			t.Fatalf("bad pair %q", kv)
		}
		got[k] = v
	}
	for k, v := range want {
		if got[k] != v {
			t.Errorf("%s = %q, want %q", k, got[k], v)
		}
	}
	if len(got) != len(want) {
		t.Errorf("Env has %d keys, want %d: %v", len(got), len(want), env)
	}
	if !slices.IsSorted(env) {
		t.Error("Env is not sorted")
	}

	// Without Vault and Postgres their variables are absent.
	bare := &Sandbox{Dir: "/d", Kubeconfig: "/d/kubeconfig", KMSEndpoint: "http://x", KMSRegion: "r"}
	for _, kv := range bare.Env() {
		if strings.HasPrefix(kv, "VAULT_") || strings.HasPrefix(kv, "VAULTCTL_PG_URL") {
			t.Errorf("unexpected %s", kv)
		}
	}

	out := ShellExports([]string{"A=plain", "B=it's $HOME `x`", "C=a=b"})
	wantOut := "export A='plain'\nexport B='it'\\''s $HOME `x`'\nexport C='a=b'\n"
	if out != wantOut {
		t.Errorf("ShellExports:\n got %q\nwant %q", out, wantOut)
	}
	// And a shell really reads them back.
	sh, err := exec.LookPath("sh")
	if err != nil {
		testreq.Missing(t, "no sh")
	}
	res, err := exec.Command(sh, "-c", out+`printf '%s|%s|%s' "$A" "$B" "$C"`).Output()
	if err != nil {
		t.Fatal(err)
	}
	if string(res) != "plain|it's $HOME `x`|a=b" {
		t.Errorf("shell read back %q", res)
	}
}

func TestDefaultDir(t *testing.T) {
	env := func(m map[string]string) func(string) string { return func(k string) string { return m[k] } }
	for _, tc := range []struct {
		env  map[string]string
		want string
	}{
		{map[string]string{"VAULTCTL_SANDBOX_DIR": "/x", "XDG_STATE_HOME": "/s", "HOME": "/h"}, "/x"},
		{map[string]string{"XDG_STATE_HOME": "/s", "HOME": "/h"}, "/s/vaultctl/sandbox"},
		{map[string]string{"HOME": "/h"}, "/h/.local/state/vaultctl/sandbox"},
	} {
		if got := defaultDir(env(tc.env)); got != tc.want {
			t.Errorf("defaultDir(%v) = %q, want %q", tc.env, got, tc.want)
		}
	}
}

func TestCheckTools(t *testing.T) {
	dir := t.TempDir()
	err := checkTools(Options{ToolsDir: ""})
	if err == nil || !strings.Contains(err.Error(), ToolsDirEnv) || !strings.Contains(err.Error(), "make tools") {
		t.Errorf("unset tools dir: %v", err)
	}
	for _, name := range requiredTools(true) {
		if name == "kwok" {
			continue
		}
		os.WriteFile(filepath.Join(dir, name), []byte("#!/bin/sh\n"), 0o755)
	}
	err = checkTools(Options{ToolsDir: dir, WithVault: true})
	if err == nil || !strings.Contains(err.Error(), `"kwok"`) || !strings.Contains(err.Error(), "make tools") ||
		!strings.Contains(err.Error(), "hack/tools/build.sh --dir") {
		t.Errorf("missing kwok: %v", err)
	}
	os.WriteFile(filepath.Join(dir, "kwok"), []byte("#!/bin/sh\n"), 0o755)
	if err := checkTools(Options{ToolsDir: dir, WithVault: true}); err != nil {
		t.Errorf("complete tools dir: %v", err)
	}
	os.Remove(filepath.Join(dir, "vault"))
	if err := checkTools(Options{ToolsDir: dir, WithVault: false}); err != nil {
		t.Errorf("vault not needed without WithVault: %v", err)
	}
	err = checkTools(Options{ToolsDir: dir, WithPostgres: true, PostgresBinDir: t.TempDir()})
	if err == nil || !strings.Contains(err.Error(), "initdb") {
		t.Errorf("missing postgres: %v", err)
	}
}

func TestVaultConfig(t *testing.T) {
	s := &Sandbox{
		Dir: "/sb", CACertFile: "/sb/pki/ca.crt", KMSEndpoint: "http://127.0.0.1:9000", KMSRegion: "us-east-1", KMSKeyAlias: KMSKeyAlias,
		Ports: map[string]int{"vault-0": 8200, "vault-0-cluster": 8201, "vault-1": 8210, "vault-1-cluster": 8211, "vault-2": 8220, "vault-2-cluster": 8221},
	}
	hcl := renderVaultConfig(s.vaultNodeConfig(1))
	for _, want := range []string{
		`api_addr      = "https://127.0.0.1:8210"`,
		`cluster_addr  = "https://127.0.0.1:8211"`,
		`node_id = "vault-1"`,
		`path    = "/sb/vault/vault-1/data"`,
		`performance_multiplier = 1`,
		`leader_api_addr     = "https://127.0.0.1:8200"`,
		`leader_api_addr     = "https://127.0.0.1:8220"`,
		`leader_ca_cert_file = "/sb/pki/ca.crt"`,
		`address         = "127.0.0.1:8210"`,
		`tls_cert_file   = "/sb/pki/vault.crt"`,
		`disable_mlock = true`,
		`seal "awskms" {`,
		`kms_key_id = "alias/vault-unseal-key"`,
		`endpoint   = "http://127.0.0.1:9000"`,
	} {
		if !strings.Contains(hcl, want) {
			t.Errorf("config lacks %q:\n%s", want, hcl)
		}
	}
	if strings.Contains(hcl, "8210\"\n  }") || strings.Count(hcl, "retry_join") != 2 {
		t.Errorf("node must retry_join the two others only:\n%s", hcl)
	}
	// The product rule: credentials never in the seal stanza.
	for _, bad := range []string{"access_key", "secret_key", "0.0.0.0", "tls_disable"} {
		if strings.Contains(hcl, bad) {
			t.Errorf("config contains %q:\n%s", bad, hcl)
		}
	}
}

func TestProcStat(t *testing.T) {
	// comm with spaces and parentheses must not shift the fields.
	line := "4242 (my (odd) proc) S 1 4242 4242 0 -1 4194560 100 0 0 0 1 2 0 0 20 0 1 0 987654 1000 50 18446744073709551615"
	st, err := parseProcStat([]byte(line))
	if err != nil {
		t.Fatal(err)
	}
	if st.state != 'S' || st.pgrp != 4242 || st.startTime != 987654 {
		t.Errorf("parsed %+v", st)
	}
	if _, err := parseProcStat([]byte("garbage")); err == nil {
		t.Error("garbage parsed")
	}
	if got := parseVmRSS("Name:\tx\nVmRSS:\t  2048 kB\nVmSwap: 0 kB\n"); got != 2048*1024 {
		t.Errorf("parseVmRSS = %d", got)
	}
}

func TestStartAndStopProcessGroup(t *testing.T) {
	dir := t.TempDir()
	// A leader that ignores SIGTERM and has a child: stop must escalate and clear the group.
	st, err := startProcess(procSpec{
		name: "stubborn", path: "/bin/sh", logPath: filepath.Join(dir, "stubborn.log"),
		args: []string{"-c", `trap '' TERM; sleep 300 & echo started; wait`},
	}, false)
	if err != nil {
		t.Fatal(err)
	}
	if !st.alive() || !st.groupLeader() {
		t.Fatalf("started process: alive=%v leader=%v", st.alive(), st.groupLeader())
	}
	deadline := time.Now().Add(5 * time.Second)
	for !strings.Contains(tailFile(st.Log, 5), "started") && time.Now().Before(deadline) {
		time.Sleep(20 * time.Millisecond)
	}
	if err := stopProcesses([]Process{st.Process}, 300*time.Millisecond); err != nil {
		t.Fatal(err)
	}
	if st.alive() || !groupGone(st.PID) {
		t.Error("process group survived stopProcesses")
	}
	<-st.done

	// A recycled PID (same PID, other start time) is never signalled.
	self := Process{Name: "me", PID: os.Getpid(), StartTime: 1}
	if self.alive() {
		t.Error("a process with a different start time counts as alive")
	}
	if err := self.signal(syscall.SIGTERM); err != nil {
		t.Error(err)
	}
}

func TestCleanEnv(t *testing.T) {
	t.Setenv("ETCD_NAME", "x")
	t.Setenv("VAULT_TOKEN", "secret")
	t.Setenv("AWS_PROFILE", "prod")
	t.Setenv("PGPASSWORD", "pw")
	t.Setenv("KUBECONFIG", "/k")
	t.Setenv("HOME", "/home/me")
	env := cleanEnv("HOME=/sandbox", "AWS_REGION=r")
	for _, kv := range env {
		k, _, _ := strings.Cut(kv, "=")
		switch k {
		case "ETCD_NAME", "VAULT_TOKEN", "AWS_PROFILE", "PGPASSWORD", "KUBECONFIG":
			t.Errorf("%s leaked into a component's environment", k)
		}
	}
	if !slices.Contains(env, "HOME=/sandbox") || slices.Contains(env, "HOME=/home/me") || !slices.Contains(env, "AWS_REGION=r") {
		t.Errorf("overrides not applied: %v", env)
	}
}

func TestCanSearch(t *testing.T) {
	for _, tc := range []struct {
		mode           os.FileMode
		ownUID, ownGID int
		uid, gid       int
		want           bool
		what           string
	}{
		{0o700, 0, 0, 101, 104, false, "root 0700 dir"},
		{0o711, 0, 0, 101, 104, true, "root 0711 dir"},
		{0o1777, 0, 0, 101, 104, true, "/tmp"},
		{0o700, 101, 104, 101, 104, true, "own dir"},
		{0o070, 0, 104, 101, 104, true, "group dir"},
		{0o707, 0, 104, 101, 104, false, "group bits rule for group members"},
	} {
		if got := canSearch(tc.mode, tc.ownUID, tc.ownGID, tc.uid, tc.gid); got != tc.want {
			t.Errorf("%s: canSearch = %v, want %v", tc.what, got, tc.want)
		}
	}
}

func TestStopTierOrder(t *testing.T) {
	// etcd last, API server and KMS after their clients.
	if !(stopTier(vaultName(0)) < stopTier(compKMS) && stopTier(compKwok) < stopTier(compAPIServer) &&
		stopTier(compAPIServer) < stopTier(compEtcd) && stopTier(compPostgres) < stopTier(compEtcd)) {
		t.Error("stop order wrong")
	}
}

func TestComponentError(t *testing.T) {
	dir := t.TempDir()
	log := filepath.Join(dir, "x.log")
	os.WriteFile(log, []byte(strings.Repeat("noise\n", 30)+"fatal: boom\n"), 0o600)
	err := error(&ComponentError{Component: "kube-apiserver", Log: log, Tail: tailFile(log, 3), Err: errors.New("exited")})
	msg := err.Error()
	if !strings.Contains(msg, "kube-apiserver") || !strings.Contains(msg, "fatal: boom") || strings.Count(msg, "noise") != 2 {
		t.Errorf("message: %s", msg)
	}
	var ce *ComponentError
	if !errors.As(err, &ce) || ce.Component != "kube-apiserver" {
		t.Error("errors.As failed")
	}
}
