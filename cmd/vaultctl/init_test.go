package main

import (
	"bytes"
	"encoding/json"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/ptytest"
	"github.com/vaultctl/vaultctl/wizard"
)

// initEnv makes a directory with a kubeconfig of two contexts whose API server refuses
// connections, and clears the AWS region variables init reads its default from.
func initEnv(t *testing.T) (dir, kubeconfig string) {
	t.Helper()
	t.Setenv("AWS_REGION", "")
	t.Setenv("AWS_DEFAULT_REGION", "")
	dir = t.TempDir()
	kubeconfig = filepath.Join(dir, "kubeconfig")
	const kc = `apiVersion: v1
kind: Config
clusters:
  - name: nowhere
    cluster: {server: "https://127.0.0.1:1"}
users:
  - name: someone
    user: {token: not-a-token}
contexts:
  - name: kind-dev
    context: {cluster: nowhere, user: someone}
  - name: prod-eks
    context: {cluster: nowhere, user: someone}
current-context: kind-dev
`
	if err := os.WriteFile(kubeconfig, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return dir, kubeconfig
}

func runInitCmd(stdin string, args ...string) (code int, stdout, stderr string) {
	var out, errOut bytes.Buffer
	code = run(append([]string{"init"}, args...), strings.NewReader(stdin), &out, &errOut)
	return code, out.String(), errOut.String()
}

func entries(t *testing.T, dir string) []string {
	t.Helper()
	es, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var names []string
	for _, e := range es {
		names = append(names, e.Name())
	}
	return names
}

// startInit runs vaultctl with args on a pseudo-terminal; the exit code arrives on the channel.
func startInit(t *testing.T, args ...string) (*ptytest.Terminal, <-chan int) {
	t.Helper()
	term := ptytest.New(t, 50, 140)
	code := make(chan int, 1)
	exited := make(chan struct{})
	go func() {
		defer close(exited)
		code <- run(args, term.TTY, term.TTY, term.TTY)
	}()
	// When a test fails midway, stop vaultctl before the terminal closes under it.
	t.Cleanup(func() {
		select {
		case <-exited:
			return
		default:
		}
		term.Type(ptytest.CtrlC)
		select {
		case <-exited:
		case <-time.After(10 * time.Second):
		}
	})
	return term, code
}

// TestInitTerminalEndToEnd runs `vaultctl init` on a pseudo-terminal, as a user would: huh's
// forms, arrow keys, typed answers, Enter; then checks the file it wrote.
func TestInitTerminalEndToEnd(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the terminal UI in a pseudo-terminal; skipped with -short")
	}
	dir, kubeconfig := initEnv(t)
	path := filepath.Join(dir, "vaultctl.yaml")
	term, code := startInit(t, "init", "--file", path, "--kubeconfig", kubeconfig)

	term.Expect("Kubernetes context")
	term.Expect("kind-dev (current)")
	term.Press(ptytest.Down, ptytest.Enter)
	term.Expect("✓ Kubernetes context: prod-eks")
	term.Expect("you will type namespace names") // the API server is unreachable

	term.Expect("Vault mode")
	term.Press(ptytest.Down, ptytest.Enter)
	term.Expect("✓ Vault mode: external")

	term.Expect("Vault address")
	term.Type("vault.example.com")
	term.Expect(`✗ must be an http(s) URL`)
	term.Press(ptytest.CtrlU)
	term.Type("https://vault.example.com:8200")
	term.Expect("✓ valid")
	term.Press(ptytest.Enter)
	term.Expect("✓ Vault address: https://vault.example.com:8200")

	term.Expect("AWS region of the KMS unseal key")
	// Focus moves asynchronously: wait for the focus bar on the next field before pressing on.
	term.Press(ptytest.Enter) // us-east-1
	term.Expect("┃ KMS key")
	term.Press(ptytest.Enter) // the default key
	term.Expect("┃ May vaultctl create the key")
	term.Press(ptytest.Enter) // no
	term.Expect("✓ Unseal key: alias/vault-unseal-key in us-east-1")

	for _, wave := range []struct{ title, answer, recap string }{
		{"Pilot wave", "internal-tools", "✓ Pilot wave: internal-tools"},
		{"Staging wave", "staging", "✓ Staging wave: staging"},
		{"Production wave", "payments, shop", "✓ Production wave: payments, shop"},
	} {
		term.Expect(wave.title)
		term.Type(wave.answer)
		term.Press(ptytest.Enter)
		term.Expect(wave.recap)
	}
	term.Expect("Which namespaces may reach Vault?")
	term.Press(ptytest.Enter) // the migrated ones
	term.Expect("✓ May reach Vault: internal-tools, staging, payments, shop")
	term.Expect("Audit devices")
	term.Press(ptytest.Enter)
	term.Expect("Where do the recovery keys go?")
	term.Press(ptytest.Enter)
	term.Expect("File for the KMS-wrapped recovery keys")
	term.Press(ptytest.Enter)
	term.Expect("Write " + path + "?")
	term.Press(ptytest.Enter)
	term.Expect("Wrote " + path + ". Next:")
	term.Expect("vaultctl plan -c " + path)
	term.Expect("vaultctl apply -c " + path)

	select {
	case c := <-code:
		if c != 0 {
			t.Fatalf("exit %d\n%s", c, term.Screen())
		}
	case <-time.After(ptytest.Timeout):
		t.Fatal("vaultctl init did not exit")
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatalf("the written file does not validate: %v", err)
	}
	if cfg.Cluster.Context != "prod-eks" || !cfg.External() || cfg.Vault.Address != "https://vault.example.com:8200" ||
		cfg.Vault.Seal.AWSKMS.Region != "us-east-1" || cfg.Vault.Seal.AWSKMS.CreateKey {
		t.Errorf("unexpected config: %+v %+v", cfg.Cluster, cfg.Vault)
	}
	if w := cfg.Migration.Waves; len(w) != 3 || !slices.Equal(w[2].Namespaces, []string{"payments", "shop"}) {
		t.Errorf("waves = %+v", w)
	}
	if len(cfg.NetworkPolicies.AllowedClients) != 4 || cfg.Vault.Init.RecoveryKeysFile != filepath.Join(filepath.Dir(path), "vault-recovery-keys.enc") {
		// A relative path in the file resolves against the file's directory.
		t.Errorf("unexpected config: %+v %+v", cfg.NetworkPolicies, cfg.Vault.Init)
	}
	data, _ := os.ReadFile(path)
	if !strings.Contains(string(data), "# vaultctl config written by `vaultctl init`") {
		t.Errorf("the file lacks its comments:\n%s", data)
	}
}

func TestInitCtrlCLeavesNoFile(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the terminal UI in a pseudo-terminal; skipped with -short")
	}
	dir, kubeconfig := initEnv(t)
	term, code := startInit(t, "init", "-f", filepath.Join(dir, "vaultctl.yaml"), "--kubeconfig", kubeconfig)
	term.Expect("Kubernetes context")
	term.Press(ptytest.Enter)
	term.Expect("Vault mode")
	term.Press(ptytest.CtrlC)
	term.Expect("aborted; nothing was written")
	if c := <-code; c != exitFailed {
		t.Fatalf("exit %d, want %d", c, exitFailed)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"kubeconfig"}) {
		t.Fatalf("Ctrl-C left files behind: %v", got)
	}
}

func TestInitAccessibleWhenStdinIsNotATerminal(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	path := filepath.Join(dir, "vaultctl.yaml")
	answers := strings.Join([]string{
		"1",          // context: kind-dev
		"",           // in-cluster
		"2",          // 5 servers
		"eu-north-1", // region
		"",           // key
		"y",          // create it
		"",           // no IRSA
		"tools", "", "production",
		"",  // allowed: the migrated namespaces
		"0", // audit: file, stdout
		"2", // PGP
		"a.asc,b.asc,c.asc",
		"",  // threshold: 2
		"y", // write
	}, "\n") + "\n"
	code, stdout, stderr := runInitCmd(answers, "-f", path, "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	for _, want := range []string{"Enter a number between 1 and 2", "kind-dev (current)", "Wrote " + path} {
		if !strings.Contains(stdout, want) {
			t.Errorf("stdout lacks %q:\n%s", want, stdout)
		}
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Cluster.Context != "kind-dev" || cfg.Vault.Replicas != 5 || !cfg.Vault.Seal.AWSKMS.CreateKey ||
		cfg.Vault.Init.RecoveryShares != 3 || cfg.Vault.Init.RecoveryThreshold != 2 {
		t.Errorf("unexpected config: %+v %+v", cfg.Cluster, cfg.Vault)
	}
}

func TestInitAccessibleInputEndsEarly(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	code, _, stderr := runInitCmd("1\n\n", "--accessible", "-f", filepath.Join(dir, "vaultctl.yaml"), "--kubeconfig", kubeconfig)
	if code != exitUsage || !strings.Contains(stderr, "input ended") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"kubeconfig"}) {
		t.Fatalf("files left behind: %v", got)
	}
}

func TestInitNonInteractive(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	path := filepath.Join(dir, "vaultctl.yaml")
	sets := []string{"--non-interactive", "-f", path, "--kubeconfig", kubeconfig,
		"--set", "vault.seal.awskms.region=eu-west-1", "--set", "waves.pilot=tools", "--set", "waves.production=payments,shop"}

	code, stdout, stderr := runInitCmd("", sets...)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	if !strings.Contains(stdout, "vaultctl apply -c "+path) {
		t.Errorf("next steps missing:\n%s", stdout)
	}
	cfg, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	if cfg.Vault.Seal.AWSKMS.Region != "eu-west-1" || len(cfg.Migration.Waves) != 2 {
		t.Errorf("unexpected config: %+v", cfg)
	}

	// An existing file is kept without --force.
	code, _, stderr = runInitCmd("", append(sets, "--set", "vault.replicas=5")...)
	if code != exitUsage || !strings.Contains(stderr, "already exists; pass --force") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if cfg, _ := config.LoadFile(path); cfg.Vault.Replicas != 3 {
		t.Fatalf("file changed without --force")
	}
	code, _, stderr = runInitCmd("", append(sets, "--set", "vault.replicas=5", "--force")...)
	if code != 0 {
		t.Fatalf("--force: exit %d, stderr %q", code, stderr)
	}
	if cfg, _ := config.LoadFile(path); cfg.Vault.Replicas != 5 {
		t.Fatalf("--force did not overwrite")
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"kubeconfig", "vaultctl.yaml"}) {
		t.Fatalf("leftover files: %v", got)
	}
}

func TestInitNonInteractiveMissingAnswer(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	code, _, stderr := runInitCmd("", "--non-interactive", "-f", filepath.Join(dir, "vaultctl.yaml"), "--kubeconfig", kubeconfig,
		"--set", "vault.mode=external", "--set", "waves.pilot=tools", "--set", "vault.seal.awskms.region=us-east-1")
	if code != exitUsage || !strings.Contains(stderr, "missing answer: pass --set vault.address=URL") {
		t.Fatalf("exit %d, stderr %q", code, stderr)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"kubeconfig"}) {
		t.Fatalf("files left behind: %v", got)
	}
}

// oneJSON parses stdout as exactly one JSON document, as -o json promises.
func oneJSON(t *testing.T, stdout string, v any) {
	t.Helper()
	dec := json.NewDecoder(strings.NewReader(stdout))
	if err := dec.Decode(v); err != nil {
		t.Fatalf("stdout is not a JSON document: %v\n%s", err, stdout)
	}
	if rest, _ := io.ReadAll(dec.Buffered()); strings.TrimSpace(string(rest)) != "" || dec.More() {
		t.Fatalf("stdout holds more than one JSON document:\n%s", stdout)
	}
}

type initJSON struct {
	Command  string           `json:"command"`
	OK       *bool            `json:"ok"`
	File     string           `json:"file"`
	Error    string           `json:"error"`
	Problems []wizard.Problem `json:"problems"`
	Warnings []config.Problem `json:"warnings"`
	Next     []string         `json:"next"`
}

func TestInitNonInteractiveJSON(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	path := filepath.Join(dir, "platform.yaml")
	code, stdout, stderr := runInitCmd("", "--non-interactive", "-o", "json", "-c", path, "--kubeconfig", kubeconfig,
		"--set", "vault.seal.awskms.region=us-east-1", "--set", "waves.pilot=tools", "--set", "vault.replicas=1")
	if code != 0 {
		t.Fatalf("exit %d\n%s", code, stderr)
	}
	var out initJSON
	oneJSON(t, stdout, &out)
	// --config names the file when --file is not given.
	if out.Command != "init" || out.OK == nil || !*out.OK || out.File != path || len(out.Next) != 3 ||
		len(out.Warnings) != 1 || out.Warnings[0].Path != "vault.replicas" {
		t.Errorf("unexpected output: %+v", out)
	}
}

// A failing init with -o json still prints its one JSON document: a CI job reads the missing
// keys from it, and stderr holds only the human message.
func TestInitJSONFailures(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	existing := filepath.Join(dir, "existing.yaml")
	if err := os.WriteFile(existing, []byte("kept\n"), 0o644); err != nil {
		t.Fatal(err)
	}
	cases := []struct {
		name     string
		args     []string
		want     []string // in "error", and on stderr
		problems []string // --set keys in "problems"
	}{
		{"missing answers", []string{"--non-interactive", "-f", filepath.Join(dir, "a.yaml"), "--set", "vault.mode=external"},
			[]string{"missing answer: pass --set vault.address=URL", "missing answer: pass --set vault.seal.awskms.region=REGION", "missing answer: pass --set waves.pilot=NS[,NS...]"},
			[]string{"vault.address", "vault.seal.awskms.region", "waves.pilot"}},
		{"wrong answer", []string{"--non-interactive", "-f", filepath.Join(dir, "b.yaml"), "--set", "vault.seal.awskms.region=Frankfurt", "--set", "waves.pilot=tools"},
			[]string{"--set vault.seal.awskms.region: must be an AWS region"}, []string{"vault.seal.awskms.region"}},
		{"file exists", []string{"--non-interactive", "-f", existing, "--set", "vault.seal.awskms.region=us-east-1", "--set", "waves.pilot=tools"},
			[]string{"already exists; pass --force"}, nil},
		{"accessible, input ends", []string{"--accessible", "-f", filepath.Join(dir, "c.yaml")},
			[]string{"input ended before every question was answered"}, nil},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			code, stdout, stderr := runInitCmd("1\n", append(c.args, "-o", "json", "--kubeconfig", kubeconfig)...)
			if code != exitUsage {
				t.Fatalf("exit %d, want %d\nstdout %s\nstderr %s", code, exitUsage, stdout, stderr)
			}
			var out initJSON
			oneJSON(t, stdout, &out)
			if out.Command != "init" || out.OK == nil || *out.OK || out.Error == "" || out.Warnings == nil {
				t.Errorf("want command init, ok false, an error and a warnings array; got %+v", out)
			}
			for _, w := range c.want {
				if !strings.Contains(out.Error, w) || !strings.Contains(stderr, w) {
					t.Errorf("%q is not in both the JSON error and stderr:\nerror: %s\nstderr: %s", w, out.Error, stderr)
				}
			}
			var keys []string
			for _, p := range out.Problems {
				keys = append(keys, p.Key)
			}
			if !slices.Equal(keys, c.problems) {
				t.Errorf("problems name %v, want %v", keys, c.problems)
			}
			if strings.Contains(stderr, "{") {
				t.Errorf("stderr holds JSON; it is for people:\n%s", stderr)
			}
		})
	}
	if b, _ := os.ReadFile(existing); string(b) != "kept\n" {
		t.Errorf("the existing file was changed: %q", b)
	}
	if got := entries(t, dir); !slices.Equal(got, []string{"existing.yaml", "kubeconfig"}) {
		t.Errorf("files left behind: %v", got)
	}
}

// With -o json the accessible prompts go to stderr: stdout is for the one JSON document.
func TestInitAccessibleJSONKeepsStdoutForTheDocument(t *testing.T) {
	dir, kubeconfig := initEnv(t)
	path := filepath.Join(dir, "vaultctl.yaml")
	answers := strings.Join([]string{"1", "", "", "eu-north-1", "", "", "", "tools", "", "", "", "0", "", "", "y"}, "\n") + "\n"
	code, stdout, stderr := runInitCmd(answers, "-o", "json", "-f", path, "--kubeconfig", kubeconfig)
	if code != 0 {
		t.Fatalf("exit %d\n%s\n%s", code, stdout, stderr)
	}
	var out initJSON
	oneJSON(t, stdout, &out)
	if out.OK == nil || !*out.OK || out.File != path {
		t.Errorf("unexpected output: %+v", out)
	}
	if !strings.Contains(stderr, "Vault mode [in-cluster]") {
		t.Errorf("the prompts are not on stderr:\n%s", stderr)
	}
}

func TestInitHelpListsSetKeys(t *testing.T) {
	code, stdout, _ := runInitCmd("", "--help")
	if code != 0 {
		t.Fatalf("exit %d", code)
	}
	for _, want := range []string{"--set keys:", "vault.seal.awskms.region=REGION", "waves.pilot=NS[,NS...]", "--accessible", "--force"} {
		if !strings.Contains(stdout, want) {
			t.Errorf("--help lacks %q", want)
		}
	}
}
