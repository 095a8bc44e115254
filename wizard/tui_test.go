package wizard

import (
	"context"
	"errors"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/charmbracelet/huh"

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
	term, _, done, cancel := startRecordedTUI(t, d)
	return term, done, cancel
}

const termWidth = 140

// startRecordedTUI is startTUI, also returning a copy of what the wizard wrote, to replay.
func startRecordedTUI(t *testing.T, d Discovery) (*ptytest.Terminal, *recordingTTY, <-chan runResult, context.CancelFunc) {
	t.Helper()
	if testing.Short() {
		t.Skip("drives the terminal UI in a pseudo-terminal; skipped with -short")
	}
	term := ptytest.New(t, 50, termWidth)
	rec := &recordingTTY{File: term.TTY}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	done := make(chan runResult, 1)
	finished := make(chan struct{})
	go func() {
		defer close(finished)
		a, err := Run(ctx, Options{In: term.TTY, Out: rec, Discovery: d, File: "vaultctl.yaml", Answers: Defaults()})
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
	return term, rec, done, cancel
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

// On a terminal the waves are checked as they are typed: an empty wave says it is left out
// (not "✓ valid"), and the production wave refuses to be empty when the earlier ones are, while
// it is being answered. No refusal is left printed on the screen once it is fixed.
func TestTUIWavesCheckedAsTyped(t *testing.T) {
	term, rec, _, _ := startRecordedTUI(t, NoCluster{})
	term.Expect("Kubernetes context")
	term.Press(ptytest.Enter)
	term.Expect("Vault mode")
	term.Press(ptytest.Enter)
	term.Expect("How many Vault servers")
	term.Press(ptytest.Enter)
	term.Expect("AWS region of the KMS unseal key")
	term.Press(ptytest.CtrlU)
	term.Type("us-east-1")
	term.Expect("✓ valid")
	term.Press(ptytest.Enter)
	term.Expect("┃ KMS key")
	term.Press(ptytest.Enter)
	term.Expect("┃ May vaultctl create the key")
	term.Press(ptytest.Enter)
	term.Expect("┃ IAM role")
	term.Press(ptytest.Enter)
	term.Expect("✓ Unseal key")

	for _, wave := range []string{"Pilot", "Staging"} {
		term.Expect(wave + " wave")
		term.Expect("! no namespaces: this wave is left out of the plan")
		term.Press(ptytest.Enter)
		term.Expect("✓ " + wave + " wave: (none)")
	}
	term.Expect("Production wave")
	term.Expect("✗ the pilot and staging waves are empty, and at least one wave needs a namespace to migrate")
	term.Press(ptytest.Enter) // refused: the cursor stays on the wave
	term.Type("shop")
	term.Expect("✓ valid")
	term.Press(ptytest.Enter)
	term.Expect("✓ Production wave: shop")
	term.Expect("Which namespaces may reach Vault?")

	assertLeftOnScreen(t, rec, "✓ Kubernetes context: (current)", "✓ Vault mode: in-cluster", "✓ Vault servers: 3",
		"✓ Unseal key: alias/vault-unseal-key in us-east-1", "✓ Pilot wave: (none)", "✓ Staging wave: (none)",
		"✓ Production wave: shop", "┃ Which namespaces may reach Vault?")
}

// assertLeftOnScreen replays what the wizard wrote and checks that, above the form being
// asked, the screen holds exactly the recaps of the steps answered: no refusal left behind.
func assertLeftOnScreen(t *testing.T, rec *recordingTTY, want ...string) {
	t.Helper()
	// The form being asked redraws asynchronously; give it a moment to settle.
	time.Sleep(200 * time.Millisecond)
	var got []string
	for _, l := range rec.screen(t, termWidth) {
		if l != "" {
			got = append(got, l)
		}
	}
	last := want[len(want)-1]
	i := slices.IndexFunc(got, func(l string) bool { return strings.HasPrefix(l, last) })
	if i < 0 || !slices.Equal(got[:i], want[:len(want)-1]) {
		t.Errorf("the screen shows:\n%s\nwant, above %q:\n%s", strings.Join(got, "\n"), last, strings.Join(want[:len(want)-1], "\n"))
	}
}

// A step refused as a whole (beyond the live check of each field) says why in the form asked
// again, which huh clears on submit, rather than in a line that would stay after the fix.
func TestTUIStepRefusalIsNotLeftOnScreen(t *testing.T) {
	if testing.Short() {
		t.Skip("drives the terminal UI in a pseudo-terminal; skipped with -short")
	}
	term := ptytest.New(t, 50, termWidth)
	rec := &recordingTTY{File: term.TTY}
	ctx, cancel := context.WithTimeout(context.Background(), time.Minute)
	defer cancel()
	r := &runner{ctx: ctx, o: Options{Discovery: NoCluster{}}, a: Defaults(), in: term.TTY, out: rec}
	attempts := 0
	ask := func(title string) error {
		return r.ask(step{build: func(r *runner) question {
			v := ""
			return question{
				fields: []huh.Field{r.text(textSpec{title: title, value: &v, check: func(string) (string, error) { return "", nil }})},
				commit: func() {},
				check: func(Answers) error {
					if attempts++; attempts == 1 {
						return errors.New("refused once")
					}
					return nil
				},
				recap: func(Answers) string { return title + ": done" },
			}
		}})
	}
	done := make(chan error, 1)
	go func() {
		if err := ask("First"); err != nil {
			done <- err
			return
		}
		done <- ask("Second")
	}()
	term.Expect("First")
	term.Press(ptytest.Enter)
	term.Expect("✗ refused once")
	term.Expect("First")
	term.Press(ptytest.Enter)
	term.Expect("✓ First: done")
	term.Expect("Second")
	assertLeftOnScreen(t, rec, "✓ First: done", "┃ Second")
	term.Press(ptytest.Enter)
	select {
	case err := <-done:
		if err != nil {
			t.Fatal(err)
		}
	case <-time.After(ptytest.Timeout):
		t.Fatal("ask did not return")
	}
}
