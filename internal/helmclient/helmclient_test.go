package helmclient

import (
	"context"
	"errors"
	"io"
	"strings"
	"testing"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
	helmtime "helm.sh/helm/v3/pkg/time"
)

func testChart(version string) *chart.Chart {
	return &chart.Chart{
		Metadata: &chart.Metadata{APIVersion: chart.APIVersionV2, Name: "demo", Version: version},
		Templates: []*chart.File{{Name: "templates/cm.yaml", Data: []byte(`apiVersion: v1
kind: ConfigMap
metadata:
  name: demo-config
  namespace: {{ .Release.Namespace }}
data:
  greeting: {{ .Values.greeting | quote }}
`)}},
		Values: map[string]any{"greeting": "hello", "replicas": 1},
	}
}

func newTestClient(t *testing.T) *Client {
	t.Helper()
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	return NewWithConfiguration(cfg, Options{Namespace: "vault", Timeout: time.Minute})
}

func history(t *testing.T, c *Client, name string) []*release.Release {
	t.Helper()
	h, err := c.cfg.Releases.History(name)
	if err != nil {
		t.Fatal(err)
	}
	return h
}

func TestUpgradeOrInstallIsANoOpWhenNothingChanged(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t)
	vals := map[string]any{"greeting": "hi", "replicas": 3}

	st, err := c.Status(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || st.Exists || !st.Differs || st.Reason != "not installed" {
		t.Fatalf("status before install: %+v %v", st, err)
	}
	res, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || !res.Changed || !res.Installed || res.Revision != 1 {
		t.Fatalf("install: %+v %v", res, err)
	}

	// Values come back from storage with float64 numbers; that is not a change.
	st, err = c.Status(ctx, "demo", testChart("0.1.0"), map[string]any{"greeting": "hi", "replicas": 3})
	if err != nil || st.Differs || st.Revision != 1 || st.State != "deployed" {
		t.Fatalf("status after install: %+v %v", st, err)
	}
	res, err = c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || res.Changed || res.Revision != 1 {
		t.Fatalf("second apply must be a no-op: %+v %v", res, err)
	}
	if n := len(history(t, c, "demo")); n != 1 {
		t.Fatalf("no-op created revisions: %d", n)
	}

	// A changed value changes the ConfigMap: one upgrade, naming the object.
	vals2 := map[string]any{"greeting": "bonjour", "replicas": 3}
	st, err = c.Status(ctx, "demo", testChart("0.1.0"), vals2)
	if err != nil || !st.Differs || len(st.Objects) != 1 || st.Objects[0] != "ConfigMap/vault/demo-config" {
		t.Fatalf("status with a change: %+v %v", st, err)
	}
	res, err = c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals2)
	if err != nil || !res.Changed || res.Installed || res.Revision != 2 {
		t.Fatalf("upgrade: %+v %v", res, err)
	}

	// A value the templates do not use still counts (the release records it).
	st, _ = c.Status(ctx, "demo", testChart("0.1.0"), map[string]any{"greeting": "bonjour", "replicas": 5})
	if !st.Differs || len(st.Objects) != 0 || st.Reason != "values" {
		t.Fatalf("values-only change: %+v", st)
	}
	// So does a new chart version.
	st, _ = c.Status(ctx, "demo", testChart("0.2.0"), vals2)
	if !st.Differs || !strings.Contains(st.Reason, "chart demo-0.1.0 -> demo-0.2.0") {
		t.Fatalf("chart change: %+v", st)
	}
}

func TestUpgradeOrInstallRecoversAnInterruptedRun(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t)
	vals := map[string]any{"greeting": "hi"}
	if _, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals); err != nil {
		t.Fatal(err)
	}
	// A killed upgrade leaves revision 2 pending.
	pending := *history(t, c, "demo")[0]
	pending.Version = 2
	pending.Info = &release.Info{Status: release.StatusPendingUpgrade, LastDeployed: helmtime.Now()}
	if err := c.cfg.Releases.Create(&pending); err != nil {
		t.Fatal(err)
	}
	st, err := c.Status(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || !st.Differs || !strings.Contains(st.Reason, "interrupted") {
		t.Fatalf("status of a pending release: %+v %v", st, err)
	}
	// Young: it may be someone else's upgrade in flight.
	_, err = c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	var pe *PendingError
	if !errors.As(err, &pe) || pe.Revision != 2 || pe.Wait <= 0 || !strings.Contains(err.Error(), "another install or upgrade") {
		t.Fatalf("want a refusal for a recent pending revision, got %v", err)
	}
	// Older than the timeout: marked failed, then upgraded.
	pending.Info.LastDeployed = helmtime.Time{Time: time.Now().Add(-2 * time.Minute)}
	if err := c.cfg.Releases.Update(&pending); err != nil {
		t.Fatal(err)
	}
	res, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || !res.Changed || res.Revision != 3 {
		t.Fatalf("upgrade after recovery: %+v %v", res, err)
	}
	r2, err := c.cfg.Releases.Get("demo", 2)
	if err != nil || r2.Info.Status != release.StatusFailed || !strings.Contains(r2.Info.Description, "interrupted") {
		t.Fatalf("revision 2: %+v %v", r2.Info, err)
	}
	last, err := c.Get("demo")
	if err != nil || last.Version != 3 || last.Info.Status != release.StatusDeployed {
		t.Fatalf("last: %+v %v", last, err)
	}
}

func TestUpgradeOrInstallRepairsAFailedRelease(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t)
	vals := map[string]any{"greeting": "hi"}
	if _, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals); err != nil {
		t.Fatal(err)
	}
	r, _ := c.Get("demo")
	r.SetStatus(release.StatusFailed, "boom")
	if err := c.cfg.Releases.Update(r); err != nil {
		t.Fatal(err)
	}
	st, _ := c.Status(ctx, "demo", testChart("0.1.0"), vals)
	if !st.Differs || !strings.Contains(st.Reason, "failed: boom") {
		t.Fatalf("status: %+v", st)
	}
	res, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || !res.Changed || res.Revision != 2 {
		t.Fatalf("repair: %+v %v", res, err)
	}
}

func TestUninstallThenInstallAgain(t *testing.T) {
	ctx := context.Background()
	c := newTestClient(t)
	vals := map[string]any{"greeting": "hi"}
	if _, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals); err != nil {
		t.Fatal(err)
	}
	if err := c.Uninstall("demo"); err != nil {
		t.Fatal(err)
	}
	if err := c.Uninstall("demo"); err != nil {
		t.Fatalf("uninstalling a missing release: %v", err)
	}
	res, err := c.UpgradeOrInstall(ctx, "demo", testChart("0.1.0"), vals)
	if err != nil || !res.Installed || res.Revision != 1 {
		t.Fatalf("reinstall: %+v %v", res, err)
	}
}

func TestDiffManifests(t *testing.T) {
	a := "---\n# Source: x/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns1\ndata:\n  k: v\n" +
		"---\n# Source: x/b.yaml\napiVersion: v1\nkind: Service\nmetadata:\n  name: b\n"
	// Same objects, other comments and key order: no difference.
	b := "---\n# Source: x/b.yaml\n# a comment\nkind: Service\napiVersion: v1\nmetadata:\n  name: b\n" +
		"---\n# Source: x/a.yaml\nkind: ConfigMap\napiVersion: v1\nmetadata:\n  namespace: ns1\n  name: a\ndata:\n  k: v\n"
	if d := diffManifests(a, b); len(d) != 0 {
		t.Fatalf("want no difference, got %v", d)
	}
	c := "---\n# Source: x/a.yaml\napiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: a\n  namespace: ns1\ndata:\n  k: w\n" +
		"---\n# Source: x/c.yaml\napiVersion: v1\nkind: Secret\nmetadata:\n  name: c\n"
	got := strings.Join(diffManifests(a, c), ",")
	if got != "ConfigMap/ns1/a,Secret/c,Service/b (removed)" {
		t.Fatalf("diff: %s", got)
	}
}
