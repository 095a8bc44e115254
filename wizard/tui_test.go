package wizard

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/ptytest"
)

type runResult struct {
	a   Answers
	err error
}

// startTUI runs the wizard's huh forms on a pseudo-terminal, as on a user's terminal.
func startTUI(t *testing.T, d Discovery) (*ptytest.Terminal, <-chan runResult, context.CancelFunc) {
	t.Helper()
	if testing.Short() {
		t.Skip("drives the terminal UI in a pseudo-terminal; skipped with -short")
	}
	term := ptytest.New(t, 50, 140)
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan runResult, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		a, err := Run(ctx, Options{In: term.TTY, Out: term.TTY, Discovery: d, File: "vaultctl.yaml", Answers: Defaults()})
		done <- runResult{a, err}
	}()
	// When a test fails midway, stop the form before the terminal closes under it.
	t.Cleanup(func() {
		cancel()
		select {
		case <-finished:
		case <-time.After(10 * time.Second):
		}
	})
	return term, done, cancel
}

func wait(t *testing.T, done <-chan runResult) runResult {
	t.Helper()
	select {
	case res := <-done:
		return res
	case <-time.After(ptytest.Timeout):
		t.Fatal("the wizard did not finish")
		return runResult{}
	}
}

func TestTUIPicksNamespacesFromTheCluster(t *testing.T) {
	term, done, _ := startTUI(t, twoContexts)

	term.Expect("Kubernetes context")
	term.Expect("prod-eks")
	term.Press(ptytest.Down, ptytest.Enter)
	term.Expect("✓ Kubernetes context: prod-eks")
	term.Expect("Found 7 namespaces.")

	term.Expect("Vault mode")
	term.Press(ptytest.Enter)
	term.Expect("✓ Vault mode: in-cluster")

	term.Expect("How many Vault servers")
	term.Press(ptytest.Down, ptytest.Enter)
	term.Expect("✓ Vault servers: 5")

	// The region is checked as it is typed, by config validate's own rule.
	term.Expect("AWS region of the KMS unseal key")
	term.Expect("IRSA")
	term.Press(ptytest.CtrlU)
	term.Type("eu-west")
	term.Expect(`✗ must be an AWS region such as us-east-1, got "eu-west"`)
	term.Press(ptytest.Enter) // refused: the cursor stays on the region
	term.Type("-1")
	term.Expect("✓ valid")
	// Focus moves asynchronously: wait for the focus bar on the next field before typing.
	term.Press(ptytest.Enter)
	term.Expect("┃ KMS key")
	term.Press(ptytest.Enter) // the default key
	term.Expect("┃ May vaultctl create the key")
	term.Press("y") // vaultctl may create the key
	term.Expect("┃ IAM role")
	term.Type("arn:aws:iam::123456789012:role/vault-unseal")
	term.Expect("✓ valid")
	term.Press(ptytest.Enter)
	term.Expect("✓ Unseal key: alias/vault-unseal-key in eu-west-1 (vaultctl may create it), IRSA role arn:aws:iam::123456789012:role/vault-unseal")

	term.Expect("Pilot wave")
	term.Expect("internal-tools (3 Secrets)")
	term.Expect("payments-prod (12 Secrets)")
	term.Press(ptytest.Down, ptytest.Space, ptytest.Enter)
	term.Expect("✓ Pilot wave: internal-tools")

	term.Expect("Staging wave")
	term.Press(ptytest.Enter) // staging is preselected by its name
	term.Expect("✓ Staging wave: staging")

	term.Expect("Production wave")
	term.Press(ptytest.Enter) // so are the two production namespaces
	term.Expect("✓ Production wave: payments-prod, shop-prod")

	term.Expect("Which namespaces may reach Vault?")
	term.Press(ptytest.Enter)
	term.Expect("✓ May reach Vault: internal-tools, payments-prod, shop-prod, staging")

	term.Expect("Audit devices")
	term.Press(ptytest.Down, ptytest.Down, ptytest.Space, ptytest.Enter) // add syslog
	term.Expect("✓ Audit devices: file, stdout, syslog")

	term.Expect("Where do the recovery keys go?")
	term.Press(ptytest.Down, ptytest.Enter)
	term.Expect("✓ Recovery keys: pgp")
	term.Expect("PGP public key files")
	term.Type("keys/alice.asc, keys/bob.asc, keys/carol.asc")
	term.Press(ptytest.Enter)
	term.Expect("How many of the 3 shares are needed to recover?")
	term.Press(ptytest.Enter) // a majority: 2
	term.Expect("✓ Recovery: 2 of 3 shares")

	term.Expect("Write vaultctl.yaml?")
	term.Press(ptytest.Enter)

	res := wait(t, done)
	if res.err != nil {
		t.Fatalf("%v\n%s", res.err, term.Screen())
	}
	if testing.Verbose() {
		t.Logf("the terminal showed:\n%s", term.Screen())
	}
	// Write the file as `vaultctl init` does, and check it with config validate's loader.
	path := filepath.Join(t.TempDir(), "vaultctl.yaml")
	if err := WriteFile(context.Background(), path, must(Render(res.a)), false); err != nil {
		t.Fatal(err)
	}
	c, err := config.LoadFile(path)
	if err != nil {
		t.Fatal(err)
	}
	k := c.Vault.Seal.AWSKMS
	if c.Cluster.Context != "prod-eks" || c.Vault.Replicas != 5 || k.Region != "eu-west-1" || !k.CreateKey ||
		k.IRSARoleARN != "arn:aws:iam::123456789012:role/vault-unseal" {
		t.Errorf("unexpected config: %+v %+v", c.Cluster, c.Vault)
	}
	waves := map[string][]string{}
	for _, w := range c.Migration.Waves {
		waves[w.Name] = w.Namespaces
	}
	if !slices.Equal(waves["pilot"], []string{"internal-tools"}) || !slices.Equal(waves["production"], []string{"payments-prod", "shop-prod"}) {
		t.Errorf("waves = %v", waves)
	}
	if in := c.Vault.Init; len(in.PGPKeys) != 3 || in.RecoveryShares != 3 || in.RecoveryThreshold != 2 {
		t.Errorf("init = %+v", in)
	}
	if len(c.Audit.Devices) != 3 || c.Audit.Devices[2].Type != "syslog" {
		t.Errorf("audit = %+v", c.Audit.Devices)
	}
}

func TestTUICtrlCAborts(t *testing.T) {
	term, done, _ := startTUI(t, twoContexts)
	term.Expect("Kubernetes context")
	term.Press(ptytest.Enter)
	term.Expect("Vault mode")
	term.Press(ptytest.CtrlC)
	if res := wait(t, done); !errors.Is(res.err, ErrAborted) {
		t.Fatalf("err = %v, want ErrAborted", res.err)
	}
}
