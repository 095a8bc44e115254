package wizard

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/testreq"
)

// fakeCluster is a Discovery with a kubeconfig of two contexts and a reachable cluster.
type fakeCluster struct {
	contexts   []string
	current    string
	namespaces []Namespace
	err        error
}

func (f fakeCluster) Contexts() ([]string, string, error) { return f.contexts, f.current, nil }

func (f fakeCluster) Namespaces(context.Context, string) ([]Namespace, error) {
	return f.namespaces, f.err
}

var twoContexts = fakeCluster{
	contexts: []string{"kind-dev", "prod-eks"},
	current:  "kind-dev",
	namespaces: []Namespace{
		{Name: "default", Secrets: 1},
		{Name: "internal-tools", Secrets: 3},
		{Name: "kube-system", Secrets: 9},
		{Name: "payments-prod", Secrets: 12},
		{Name: "shop-prod", Secrets: 4},
		{Name: "staging", Secrets: 7},
		{Name: "vault", Secrets: 2},
	},
}

// mustValidate renders the answers and runs them through config.Parse, as `config validate` would.
func mustValidate(t *testing.T, a Answers) *config.Loaded {
	t.Helper()
	data, err := Render(a)
	if err != nil {
		t.Fatal(err)
	}
	l, err := config.Parse("vaultctl.yaml", data, config.LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatalf("rendered config does not validate: %v\n%s", err, data)
	}
	return l
}

// accessible runs the wizard in accessible mode on the given answer lines.
func accessible(t *testing.T, d Discovery, start Answers, lines ...string) (Answers, string, error) {
	t.Helper()
	var out strings.Builder
	a, err := Run(context.Background(), Options{
		In:         strings.NewReader(strings.Join(lines, "\n") + "\n"),
		Out:        &out,
		Accessible: true,
		Discovery:  d,
		Answers:    start,
	})
	return a, out.String(), err
}

func waveNamespaces(l *config.Loaded) map[string][]string {
	out := map[string][]string{}
	for _, w := range l.Migration.Waves {
		out[w.Name] = w.Namespaces
	}
	return out
}

func allowed(l *config.Loaded) []string {
	var out []string
	for _, c := range l.NetworkPolicies.AllowedClients {
		out = append(out, c.Namespace)
	}
	return out
}

func auditPaths(l *config.Loaded) []string {
	var out []string
	for _, d := range l.Audit.Devices {
		out = append(out, d.Path)
	}
	return out
}

func TestAccessibleInClusterCreateKey(t *testing.T) {
	a, out, err := accessible(t, twoContexts, Defaults(),
		"2",                    // context: prod-eks
		"",                     // mode: in-cluster
		"",                     // replicas: 3
		"eu-central-1",         // region
		"alias/platform-vault", // key
		"y",                    // createKey
		"arn:aws:iam::123456789012:role/vault-unseal", // IRSA
		"2", "0", // pilot: internal-tools
		"0", // staging: staging, preselected by its name
		"0", // production: payments-prod and shop-prod, preselected by their names
		"0", // allowed: the migrated namespaces, preselected
		"0", // audit: file and stdout
		"",  // recovery: KMS-wrapped file
		"",  // file: the default
		"y", // write
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"internal-tools (3 Secrets)", "payments-prod (12 Secrets)", "prod-eks"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Contains(out, "kube-system") {
		t.Errorf("system namespaces must not be offered:\n%s", out)
	}
	l := mustValidate(t, a)
	k := l.Vault.Seal.AWSKMS
	if l.Cluster.Context != "prod-eks" || l.Vault.Mode != "in-cluster" || l.Vault.Replicas != 3 ||
		k.Region != "eu-central-1" || k.KMSKeyID != "alias/platform-vault" || !k.CreateKey ||
		k.IRSARoleARN != "arn:aws:iam::123456789012:role/vault-unseal" {
		t.Errorf("unexpected config: %+v %+v", l.Cluster, l.Vault)
	}
	waves := waveNamespaces(l)
	if !slices.Equal(waves["pilot"], []string{"internal-tools"}) || !slices.Equal(waves["staging"], []string{"staging"}) ||
		!slices.Equal(waves["production"], []string{"payments-prod", "shop-prod"}) {
		t.Errorf("waves = %v", waves)
	}
	if got := allowed(l); !slices.Equal(got, []string{"internal-tools", "payments-prod", "shop-prod", "staging"}) || !l.NetworkPolicies.Enabled {
		t.Errorf("allowed clients = %v", got)
	}
	if got := auditPaths(l); !slices.Equal(got, []string{"file", "stdout"}) {
		t.Errorf("audit = %v", got)
	}
	if l.Vault.Init.RecoveryKeysFile != DefaultRecoveryKeysFile || l.Vault.Init.RecoveryShares != 5 || l.Vault.Init.RecoveryThreshold != 3 {
		t.Errorf("init = %+v", l.Vault.Init)
	}
}

func TestAccessibleExternalWithAddress(t *testing.T) {
	a, out, err := accessible(t, NoCluster{}, Defaults(),
		"ci-cluster",        // context, typed: there is no kubeconfig
		"2",                 // mode: external
		"vault.example.com", // not a URL: asked again
		"https://vault.example.com:8200",
		"", // region: us-east-1
		"arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab",
		"", // createKey: no
		"tools",
		"staging",
		"prod, payments",
		"",  // allowed: the migrated namespaces
		"3", // audit: add syslog
		"0",
		"",                     // recovery: KMS-wrapped file
		"secrets/recovery.enc", // file
		"",                     // write: yes
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, `must be an http(s) URL such as https://vault.example.com:8200, got "vault.example.com"`) {
		t.Errorf("the bad address was not refused with config validate's message:\n%s", out)
	}
	if strings.Contains(out, "IRSA") {
		t.Errorf("an external Vault needs no IRSA question:\n%s", out)
	}
	l := mustValidate(t, a)
	if l.Cluster.Context != "ci-cluster" || !l.External() || l.Vault.Address != "https://vault.example.com:8200" ||
		l.Vault.Seal.AWSKMS.Region != "us-east-1" || l.Vault.Seal.AWSKMS.CreateKey {
		t.Errorf("unexpected config: %+v %+v", l.Cluster, l.Vault)
	}
	waves := waveNamespaces(l)
	if !slices.Equal(waves["production"], []string{"prod", "payments"}) || len(l.Migration.Waves) != 3 {
		t.Errorf("waves = %v", waves)
	}
	if got := auditPaths(l); !slices.Equal(got, []string{"file", "stdout", "syslog"}) {
		t.Errorf("audit = %v", got)
	}
	if l.Vault.Init.RecoveryKeysFile != "secrets/recovery.enc" {
		t.Errorf("recoveryKeysFile = %q", l.Vault.Init.RecoveryKeysFile)
	}
}

func TestAccessibleFiveReplicasPGP(t *testing.T) {
	a, out, err := accessible(t, NoCluster{}, Defaults(),
		"",               // context: the current one
		"",               // mode: in-cluster
		"2",              // replicas: 5
		"ap-southeast-2", // region
		"",               // key: alias/vault-unseal-key
		"",               // createKey: no
		"",               // IRSA: none
		"internal-tools",
		"",
		"production",
		"-",      // allowed: none, NetworkPolicies off
		"1", "0", // audit: drop file, leaving one device: refused, asked again
		"1", "0", // audit: file back
		"2", // recovery: PGP
		"keys/alice.asc, keys/bob.asc, keys/carol.asc, keys/dan.asc, keys/erin.asc",
		"9", // threshold above the shares: refused
		"4",
		"y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{"has 1 device(s); configure at least two", "must be between 1 and recoveryShares (5), got 9"} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	l := mustValidate(t, a)
	in := l.Vault.Init
	if l.Vault.Replicas != 5 || l.Vault.Seal.AWSKMS.Region != "ap-southeast-2" || l.Cluster.Context != "" {
		t.Errorf("unexpected config: %+v", l.Vault)
	}
	if len(in.PGPKeys) != 5 || in.PGPKeys[4] != "keys/erin.asc" || in.RecoveryShares != 5 || in.RecoveryThreshold != 4 || in.RecoveryKeysFile != "" {
		t.Errorf("init = %+v", in)
	}
	if l.NetworkPolicies.Enabled || len(l.NetworkPolicies.AllowedClients) != 0 {
		t.Errorf("network policies = %+v", l.NetworkPolicies)
	}
	if got := auditPaths(l); !slices.Equal(got, []string{"file", "stdout"}) {
		t.Errorf("audit = %v", got)
	}
}

func TestAccessibleCreateKeyNeedsAlias(t *testing.T) {
	arn := "arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab"
	a, out, err := accessible(t, NoCluster{}, Defaults(),
		"", "", "", // context, mode, replicas
		"us-east-1", arn, "y", "", // a key ARN with createKey: refused as a whole screen
		"us-east-1", "alias/vault-unseal", "y", "",
		"tools", "", "", "", "0", "", "", "y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "must be an alias/NAME when createKey is true") {
		t.Errorf("createKey with a key ARN was not refused:\n%s", out)
	}
	if l := mustValidate(t, a); l.Vault.Seal.AWSKMS.KMSKeyID != "alias/vault-unseal" || !l.Vault.Seal.AWSKMS.CreateKey {
		t.Errorf("seal = %+v", l.Vault.Seal.AWSKMS)
	}
}

func TestAccessibleChangeAnswersKeepsThemAsDefaults(t *testing.T) {
	a, out, err := accessible(t, NoCluster{}, Defaults(),
		"", "", "", "eu-west-1", "", "", "", "tools", "", "", "", "0", "", "",
		"n", // change answers: every question again, with the answers as defaults
		"", "", "2", "", "", "", "", "", "", "", "", "0", "", "",
		"y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	l := mustValidate(t, a)
	if l.Vault.Replicas != 5 || l.Vault.Seal.AWSKMS.Region != "eu-west-1" || waveNamespaces(l)["pilot"][0] != "tools" {
		t.Errorf("unexpected config: %+v %v", l.Vault, l.Migration.Waves)
	}
}

func TestAccessibleStartsFromSetAnswers(t *testing.T) {
	start := Defaults()
	if _, err := ApplySet(&start, []string{"vault.seal.awskms.region=sa-east-1", "waves.pilot=tools", "vault.mode=external", "vault.address=https://vault.internal:8200"}); err != nil {
		t.Fatal(err)
	}
	// context, mode, address, region, key, createKey, 3 waves, allowed, audit, recovery, file, write
	lines := slices.Repeat([]string{""}, 13)
	lines = slices.Insert(lines, 10, "0") // the audit multiple choice ends with 0
	a, out, err := accessible(t, NoCluster{}, start, lines...)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	l := mustValidate(t, a)
	if l.Vault.Address != "https://vault.internal:8200" || l.Vault.Seal.AWSKMS.Region != "sa-east-1" || waveNamespaces(l)["pilot"][0] != "tools" {
		t.Errorf("--set answers were not the defaults: %+v", l.Vault)
	}
}

// An address from --set is not written when the answer is in-cluster: the wizard says so.
func TestAccessibleSetAddressUnusedInCluster(t *testing.T) {
	start := Defaults()
	if _, err := ApplySet(&start, []string{"vault.address=not-a-url"}); err != nil {
		t.Fatal(err)
	}
	a, out, err := accessible(t, NoCluster{}, start,
		"", "", "", "us-east-1", "", "", "", "tools", "", "", "", "0", "", "", "y")
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Note: the Vault address not-a-url is not used: in-cluster, vaultctl installs Vault and knows its address.") {
		t.Errorf("the unused address was dropped silently:\n%s", out)
	}
	if l := mustValidate(t, a); l.External() || l.Vault.Address != "" {
		t.Errorf("vault = %+v", l.Vault)
	}
}

// In accessible mode an empty line confirms a multiple choice, as it keeps the default
// everywhere else, and the prompt says how many to choose instead of huh's "Select up to 3".
func TestAccessibleMultiSelectEmptyLineConfirms(t *testing.T) {
	a, out, err := accessible(t, NoCluster{}, Defaults(),
		"", "", "", "us-east-1", "", "", "", "tools", "", "", "",
		"1", "2", "", // audit: unselect file and stdout, confirm: refused, asked again at once
		"7",      // not a choice
		"3", "1", // syslog and file
		"", // confirmed by an empty line
		"", "", "y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	for _, want := range []string{
		"Audit devices (type a number to select or unselect it; 0 or an empty line when done)\nChoose at least two:",
		"Enter a number between 0 and 3 (empty: done): ✗ has 0 device(s); configure at least two",
		`✗ "7" is not a choice: type 1 to 3 to select or unselect one, 0 or an empty line when done`,
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	for _, bad := range []string{"Select up to", "must be a number between 0 and 3"} {
		if strings.Contains(out, bad) {
			t.Errorf("output shows %q:\n%s", bad, out)
		}
	}
	if got := auditPaths(mustValidate(t, a)); !slices.Equal(got, []string{"file", "syslog"}) {
		t.Errorf("audit = %v", got)
	}
}

// Each wave is checked as it is answered: the production wave refuses to be empty when the
// earlier ones are, at once and in its own prompt, and says so before the choice.
func TestAccessibleWavesCheckedAsAnswered(t *testing.T) {
	a, out, err := accessible(t, twoContexts, Defaults(),
		"1", "", "", "us-east-1", "", "", "",
		"",      // pilot: none
		"5", "", // staging: unselect the preselected staging; none
		"3", "4", "", // production: unselect both preselected: refused at once
		"3", "", // payments-prod
		"", "", "", "", "y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	const refusal = "the pilot and staging waves are empty, and at least one wave needs a namespace to migrate"
	for _, want := range []string{
		"Pilot wave: which namespaces go first? (type a number to select or unselect it; 0 or an empty line when done)\n" +
			"One or two low-risk namespaces, to learn the injector. Each wave takes a week.\nSelect none to leave this wave out.",
		"Select at least one: " + refusal + ".",
		"(empty: done): ✗ " + refusal + "\n",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("output lacks %q:\n%s", want, out)
		}
	}
	if strings.Count(out, "Production wave: which namespaces last?") != 1 {
		t.Errorf("the production wave was asked again from the start instead of refused in place:\n%s", out)
	}
	l := mustValidate(t, a)
	if w := l.Migration.Waves; len(w) != 1 || w[0].Name != "production" || !slices.Equal(w[0].Namespaces, []string{"payments-prod"}) {
		t.Errorf("waves = %+v", w)
	}
}

// Without a cluster, the typed production wave is refused as it is typed, not after it.
func TestAccessibleTypedWavesCheckedAsAnswered(t *testing.T) {
	_, out, err := accessible(t, NoCluster{}, Defaults(),
		"", "", "", "us-east-1", "", "", "",
		"", "", "", // three empty waves: the third is refused in its own prompt
		"shop", "", "0", "", "", "y",
	)
	if err != nil {
		t.Fatalf("%v\n%s", err, out)
	}
	if !strings.Contains(out, "Production wave: which namespaces last?: the pilot and staging waves are empty, and at least one wave needs a namespace to migrate\n") {
		t.Errorf("the empty production wave was not refused in its prompt:\n%s", out)
	}
	if strings.Contains(out, "✗ choose at least one namespace") {
		t.Errorf("the refusal came after the wave:\n%s", out)
	}
}

func TestAccessibleInputEndsEarly(t *testing.T) {
	_, out, err := accessible(t, NoCluster{}, Defaults(), "", "", "")
	if !errors.Is(err, errInputEnded) {
		t.Fatalf("err = %v, want errInputEnded\n%s", err, out)
	}
}

func TestAccessibleAbort(t *testing.T) {
	pr, pw := io.Pipe()
	defer pw.Close()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() {
		_, err := Run(ctx, Options{In: pr, Out: io.Discard, Accessible: true, Discovery: NoCluster{}, Answers: Defaults()})
		done <- err
	}()
	if _, err := io.WriteString(pw, "\n\n"); err != nil { // two answers, then Ctrl-C
		t.Fatal(err)
	}
	cancel()
	select {
	case err := <-done:
		if !errors.Is(err, ErrAborted) {
			t.Fatalf("err = %v, want ErrAborted", err)
		}
	case <-time.After(10 * time.Second):
		t.Fatal("Run did not return after cancellation")
	}
}

func TestLineReaderHandsOutOneLinePerRead(t *testing.T) {
	lr := newLineReader(strings.NewReader("a\nbb\nlast"))
	buf := make([]byte, 64)
	var got []string
	for {
		n, err := lr.Read(buf)
		if err != nil {
			break
		}
		got = append(got, string(buf[:n]))
	}
	if !slices.Equal(got, []string{"a\n", "bb\n", "last"}) || lr.ended {
		t.Fatalf("got %q, ended=%v", got, lr.ended)
	}
	if _, err := lr.Read(buf); err != io.EOF || !lr.ended {
		t.Fatalf("a read past the last answer must note that input ended")
	}
}

func TestNonInteractiveConfigs(t *testing.T) {
	base := Defaults()
	cases := []struct {
		name  string
		sets  []string
		check func(t *testing.T, l *config.Loaded)
	}{
		{"minimal", []string{"vault.seal.awskms.region=us-east-1", "waves.pilot=internal-tools"}, func(t *testing.T, l *config.Loaded) {
			if l.Vault.Mode != "in-cluster" || l.Vault.Replicas != 3 || l.Vault.Seal.AWSKMS.KMSKeyID != DefaultKMSKeyID {
				t.Errorf("defaults not applied: %+v", l.Vault)
			}
			if got := allowed(l); !slices.Equal(got, []string{"internal-tools"}) {
				t.Errorf("allowed namespaces default to the migrated ones, got %v", got)
			}
		}},
		{"external with PGP", []string{
			"vault.mode=external", "vault.address=https://vault.example.com:8200",
			"vault.seal.awskms.region=eu-west-1", "vault.seal.awskms.kmsKeyId=mrk-0123456789abcdef0123456789abcdef",
			"waves.staging=staging", "waves.production=payments,shop",
			"recovery.pgpKeys=a.asc,b.asc,c.asc", "vault.init.recoveryThreshold=2",
			"cluster.context=prod-eks",
		}, func(t *testing.T, l *config.Loaded) {
			if !l.External() || l.Vault.Address != "https://vault.example.com:8200" || l.Cluster.Context != "prod-eks" {
				t.Errorf("vault = %+v", l.Vault)
			}
			if in := l.Vault.Init; len(in.PGPKeys) != 3 || in.RecoveryShares != 3 || in.RecoveryThreshold != 2 {
				t.Errorf("init = %+v", in)
			}
			if w := l.Migration.Waves; len(w) != 2 || w[0].Name != "staging" || w[0].Week != 1 || w[1].Week != 2 {
				t.Errorf("waves = %+v", w)
			}
		}},
		{"five replicas, created key, no NetworkPolicies", []string{
			"vault.replicas=5", "vault.seal.awskms.region=us-west-2", "vault.seal.awskms.kmsKeyId=alias/team/vault",
			"vault.seal.awskms.createKey=true", "vault.seal.awskms.irsaRoleArn=arn:aws:iam::123456789012:role/vault",
			"waves.pilot=tools", "networkPolicies.allowedNamespaces=", "audit.devices=file,syslog",
			"vault.init.recoveryKeysFile=/secure/recovery.enc", "vault.namespace=secrets",
		}, func(t *testing.T, l *config.Loaded) {
			k := l.Vault.Seal.AWSKMS
			if l.Vault.Replicas != 5 || !k.CreateKey || k.KMSKeyID != "alias/team/vault" || k.IRSARoleARN == "" || l.Vault.Namespace != "secrets" {
				t.Errorf("vault = %+v", l.Vault)
			}
			if l.NetworkPolicies.Enabled {
				t.Errorf("an empty allowedNamespaces must turn NetworkPolicies off")
			}
			if got := auditPaths(l); !slices.Equal(got, []string{"file", "syslog"}) {
				t.Errorf("audit = %v", got)
			}
			if l.Vault.Init.RecoveryKeysFile != "/secure/recovery.enc" {
				t.Errorf("init = %+v", l.Vault.Init)
			}
		}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			a, err := FromSet(base, c.sets)
			if err != nil {
				t.Fatal(err)
			}
			c.check(t, mustValidate(t, a))
		})
	}
}

func TestNonInteractiveErrorsNameTheSetKey(t *testing.T) {
	cases := []struct {
		name string
		sets []string
		want []string
	}{
		{"nothing", nil, []string{
			"missing answer: pass --set vault.seal.awskms.region=REGION",
			"missing answer: pass --set waves.pilot=NS[,NS...]",
		}},
		{"external without address", []string{"vault.mode=external", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"missing answer: pass --set vault.address=URL"}},
		{"PGP custody without keys", []string{"recovery.pgpKeys=", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"missing answer: pass --set vault.init.pgpKeys=FILE[,FILE...]"}},
		{"even replicas", []string{"vault.replicas=4", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"--set vault.replicas: must be odd"}},
		{"replicas not a number", []string{"vault.replicas=three"}, []string{`--set vault.replicas: must be a whole number, got "three"`}},
		{"createKey with a key ARN", []string{"vault.seal.awskms.createKey=true", "vault.seal.awskms.kmsKeyId=arn:aws:kms:us-east-1:123456789012:key/1234abcd-12ab-34cd-56ef-1234567890ab", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"--set vault.seal.awskms.kmsKeyId: must be an alias/NAME when createKey is true"}},
		{"namespace in two waves", []string{"vault.seal.awskms.region=us-east-1", "waves.pilot=shop", "waves.production=shop"},
			[]string{`--set waves.production: namespace "shop" is already migrated in migration.waves[0]`}},
		{"bad namespace", []string{"vault.seal.awskms.region=us-east-1", "waves.staging=Shop_1"},
			[]string{`--set waves.staging: must be a namespace name, got "Shop_1"`}},
		{"one audit device", []string{"vault.seal.awskms.region=us-east-1", "waves.pilot=a", "audit.devices=stdout"},
			[]string{"--set audit.devices: has 1 device(s)"}},
		{"bad region", []string{"vault.seal.awskms.region=Frankfurt", "waves.pilot=a"},
			[]string{"--set vault.seal.awskms.region: must be an AWS region such as us-east-1"}},
		{"address in in-cluster mode", []string{"vault.address=not-a-url", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"--set vault.address: is only used when vault.mode is external, and vault.mode is in-cluster", "add --set vault.mode=external, or drop vault.address"}},
		{"replicas for an external Vault", []string{"vault.mode=external", "vault.address=https://vault.example.com:8200", "vault.replicas=5", "vault.seal.awskms.region=us-east-1", "waves.pilot=a"},
			[]string{"--set vault.replicas: is only used when vault.mode is in-cluster"}},
		{"unknown key", []string{"region=us-east-1"}, []string{`--set region: unknown key (did you mean "vault.seal.awskms.region"?)`}},
		{"no value", []string{"vault.mode"}, []string{"--set vault.mode: needs the form key=value"}},
	}
	for _, c := range cases {
		t.Run(c.name, func(t *testing.T) {
			_, err := FromSet(Defaults(), c.sets)
			var ae *AnswerError
			if !errors.As(err, &ae) {
				t.Fatalf("err = %v, want *AnswerError", err)
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q:\n%v", w, err)
				}
			}
		})
	}
}

// A mistyped --set key gets the nearest key, not a list of all twenty.
func TestUnknownSetKeySuggestsTheNearest(t *testing.T) {
	for _, c := range []struct{ key, want string }{
		{"vault.seal.awskms.regon", "vault.seal.awskms.region"},
		{"vault.seal.region", "vault.seal.awskms.region"},
		{"waves.pilt", "waves.pilot"},
		{"wave.pilot", "waves.pilot"},
		{"waves.prod", "waves.production"},
		{"vault.adress", "vault.address"},
		{"kmsKeyID", "vault.seal.awskms.kmsKeyId"},
		{"audit.device", "audit.devices"},
		{"foo", ""}, // nothing near: the list of keys instead
	} {
		_, err := FromSet(Defaults(), []string{c.key + "=x"})
		if err == nil {
			t.Fatalf("%s: no error", c.key)
		}
		msg := err.Error()
		if c.want == "" {
			if strings.Contains(msg, "did you mean") || !strings.Contains(msg, "known keys: audit.allowSingleDevice,") {
				t.Errorf("%s: want the list of keys, got %s", c.key, msg)
			}
			continue
		}
		if want := fmt.Sprintf("--set %s: unknown key (did you mean %q?)", c.key, c.want); msg != want {
			t.Errorf("got  %s\nwant %s", msg, want)
		}
	}
}

func TestSetHelpListsEveryKey(t *testing.T) {
	help := SetHelp()
	for _, k := range setKeys {
		if !strings.Contains(help, "  "+k.name+"=") {
			t.Errorf("--help lacks %s", k.name)
		}
	}
}

// Each written wave gets the gates and the comment of its place in the plan actually written:
// a first wave has no previous wave to wait for, and a lone production wave is not "last".
func TestRenderWaveGatesFollowTheirPlace(t *testing.T) {
	type want struct{ name, comment, gates string }
	for _, c := range []struct {
		waves []string
		want  []want
	}{
		{[]string{WaveProduction}, []want{
			{"production", "the only wave: no pilot before it, so it starts once the injector is healthy", "[injector-healthy, check-passing]"}}},
		{[]string{WavePilot}, []want{{"pilot", "a low-risk first wave, to learn the injector", "[injector-healthy]"}}},
		{[]string{WaveStaging, WaveProduction}, []want{
			{"staging", "the first wave (no pilot), once the injector is healthy", "[injector-healthy, check-passing]"},
			{"production", "last, once the staging wave ran clean", "[previous-wave-complete, check-passing]"}}},
		{[]string{WavePilot, WaveProduction}, []want{
			{"pilot", "a low-risk first wave, to learn the injector", "[injector-healthy]"},
			{"production", "last, once the pilot wave ran clean", "[previous-wave-complete, check-passing]"}}},
		{[]string{WavePilot, WaveStaging}, []want{
			{"pilot", "a low-risk first wave, to learn the injector", "[injector-healthy]"},
			{"staging", "last, once the pilot wave ran clean", "[previous-wave-complete, check-passing]"}}},
		{WaveNames, []want{
			{"pilot", "a low-risk first wave, to learn the injector", "[injector-healthy]"},
			{"staging", "staging before production", "[previous-wave-complete, check-passing]"},
			{"production", "last, once the earlier waves ran clean", "[previous-wave-complete, check-passing]"}}},
	} {
		a := Defaults()
		a.Region = "us-east-1"
		for _, w := range c.waves {
			a.Waves[w] = []string{w + "-ns"}
		}
		data := string(must(Render(a)))
		l := mustValidate(t, a)
		if len(l.Migration.Waves) != len(c.want) {
			t.Fatalf("%v: %d waves written", c.waves, len(l.Migration.Waves))
		}
		for i, w := range c.want {
			got := l.Migration.Waves[i]
			if got.Week != i+1 || got.Name != w.name || "["+strings.Join(got.Gates, ", ")+"]" != w.gates {
				t.Errorf("%v: wave %d = week %d %s %v, want week %d %s %s", c.waves, i, got.Week, got.Name, got.Gates, i+1, w.name, w.gates)
			}
			if !strings.Contains(data, "name: "+w.name+" # "+w.comment+"\n") {
				t.Errorf("%v: the %s wave lacks the comment %q:\n%s", c.waves, w.name, w.comment, data)
			}
		}
	}
}

func TestRenderQuotesWhateverIsTyped(t *testing.T) {
	for _, s := range []string{"kind-dev", "a: b", "x #y", "[ns]", "true", "-", "3", "'q'", `"dq"`, "ünïcode", "a,b", "*", "@home", "", " lead"} {
		a := Defaults()
		a.Region, a.Waves[WavePilot] = "us-east-1", []string{"a"}
		a.Context, a.IRSARoleARN = s, ""
		data, _ := Render(a)
		l, err := config.Parse("x.yaml", data, config.LoadOptions{Environ: []string{}})
		if err != nil {
			t.Errorf("context %q: %v", s, err)
			continue
		}
		if l.Cluster.Context != s {
			t.Errorf("context %q read back as %q", s, l.Cluster.Context)
		}
		// A mistyped namespace still parses, so config validate names the key.
		a.Waves[WaveStaging] = []string{s}
		if s == "" {
			continue
		}
		_, err = config.Parse("x.yaml", must(Render(a)), config.LoadOptions{Environ: []string{}})
		if err != nil && !strings.Contains(err.Error(), "migration.waves[1].namespaces[0]") && !strings.Contains(err.Error(), "migration.waves[1]") {
			t.Errorf("namespace %q: problem not at its key: %v", s, err)
		}
	}
}

func must(b []byte, err error) []byte {
	if err != nil {
		panic(err)
	}
	return b
}

// The sample in docs/wizard.md is Render's output for these answers; this keeps it current.
func TestDocSampleIsCurrent(t *testing.T) {
	doc, err := os.ReadFile("../docs/wizard.md")
	if err != nil {
		testreq.Missing(t, "docs/wizard.md not found")
	}
	const start, end = "<!-- sample:start -->\n```yaml\n", "```\n<!-- sample:end -->"
	s := string(doc)
	i, j := strings.Index(s, start), strings.Index(s, end)
	if i < 0 || j < i {
		t.Fatalf("docs/wizard.md lacks the sample markers")
	}
	if got, want := s[i+len(start):j], string(must(Render(docSample()))); got != want {
		t.Errorf("docs/wizard.md sample is out of date; it should read:\n%s", want)
	}
}

// docs/wizard.md says which answers have no default; hold it to what the wizard requires.
func TestDocNamesTheAnswersWithoutDefault(t *testing.T) {
	doc, err := os.ReadFile("../docs/wizard.md")
	if err != nil {
		t.Skip("docs/wizard.md not found")
	}
	text := strings.Join(strings.Fields(string(doc)), " ")
	if strings.Contains(text, "first: every answer has a default") {
		t.Errorf("docs/wizard.md claims every answer has a default; the waves and an external address have none")
	}
	const claim = "The ones you must give are the namespaces to migrate (at least one, in any of the three waves) and, for an external Vault, its address"
	if !strings.Contains(text, claim) {
		t.Fatalf("docs/wizard.md lacks %q", claim)
	}
	// With the interactive defaults (the region defaults to us-east-1 there), exactly those are missing.
	for mode, want := range map[string][]string{
		"in-cluster": {"waves.pilot"},
		"external":   {"vault.address", "waves.pilot"},
	} {
		a := Defaults()
		a.Mode, a.Region = mode, DefaultRegion
		var got []string
		for _, p := range Missing(a) {
			got = append(got, p.Key)
		}
		if !slices.Equal(got, want) {
			t.Errorf("%s: missing %v, but the doc names %v", mode, got, want)
		}
	}
}

func docSample() Answers {
	a := Defaults()
	a.Context = "prod-eks"
	a.Region = "eu-west-1"
	a.CreateKey = true
	a.IRSARoleARN = "arn:aws:iam::123456789012:role/vault-unseal"
	a.Waves = map[string][]string{
		WavePilot:      {"internal-tools"},
		WaveStaging:    {"staging"},
		WaveProduction: {"payments", "shop"},
	}
	a.AllowedNamespaces = a.MigratedNamespaces()
	return a
}

func TestWriteFileRefusesToOverwrite(t *testing.T) {
	dir := t.TempDir()
	path := filepath.Join(dir, "vaultctl.yaml")
	if err := WriteFile(context.Background(), path, []byte("one\n"), false); err != nil {
		t.Fatal(err)
	}
	err := WriteFile(context.Background(), path, []byte("two\n"), false)
	var exists *ExistsError
	if !errors.As(err, &exists) || !strings.Contains(err.Error(), "--force") {
		t.Fatalf("err = %v, want ExistsError naming --force", err)
	}
	if err := CheckWritable(path, false); !errors.As(err, &exists) {
		t.Fatalf("CheckWritable = %v", err)
	}
	if b, _ := os.ReadFile(path); string(b) != "one\n" {
		t.Fatalf("file overwritten without --force: %q", b)
	}
	if err := WriteFile(context.Background(), path, []byte("two\n"), true); err != nil {
		t.Fatal(err)
	}
	if b, _ := os.ReadFile(path); string(b) != "two\n" {
		t.Fatalf("--force did not overwrite: %q", b)
	}
	if st, _ := os.Stat(path); st.Mode().Perm() != 0o644 {
		t.Errorf("mode = %v, want 0644", st.Mode().Perm())
	}
	assertOnly(t, dir, "vaultctl.yaml")
}

func TestWriteFileAbortedLeavesNothing(t *testing.T) {
	dir := t.TempDir()
	ctx, cancel := context.WithCancel(context.Background())
	cancel()
	if err := WriteFile(ctx, filepath.Join(dir, "vaultctl.yaml"), []byte("x\n"), false); !errors.Is(err, ErrAborted) {
		t.Fatalf("err = %v, want ErrAborted", err)
	}
	assertOnly(t, dir)
}

// assertOnly fails unless dir holds exactly the named files (no temporary leftovers).
func assertOnly(t *testing.T, dir string, names ...string) {
	t.Helper()
	entries, err := os.ReadDir(dir)
	if err != nil {
		t.Fatal(err)
	}
	var got []string
	for _, e := range entries {
		got = append(got, e.Name())
	}
	if !slices.Equal(got, names) {
		t.Fatalf("%s holds %v, want %v", dir, got, names)
	}
}
