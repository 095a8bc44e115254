package phases

import (
	"context"
	"errors"
	"fmt"
	"time"

	"helm.sh/helm/v3/pkg/chart"

	"github.com/vaultctl/vaultctl/internal/helmclient"
)

// HelmAPI is the part of Helm the server and injector phases use; *helmclient.Client
// satisfies it.
type HelmAPI interface {
	// Status says whether UpgradeOrInstall would write a new revision, changing nothing.
	Status(ctx context.Context, release string, ch *chart.Chart, vals map[string]any) (helmclient.Status, error)
	// UpgradeOrInstall installs or upgrades the release; it is a no-op when nothing differs.
	UpgradeOrInstall(ctx context.Context, release string, ch *chart.Chart, vals map[string]any) (helmclient.Result, error)
}

// lazyHelm builds a namespace's Helm client on first use and keeps it, so that a phase's Check,
// Apply and verifying Check share one (building it reads the cluster's API groups).
type lazyHelm struct {
	factory   HelmFactory
	namespace string
	client    HelmAPI
}

func (l *lazyHelm) get() (HelmAPI, error) {
	if l.client == nil {
		if l.factory == nil {
			return nil, errors.New("no Helm client factory")
		}
		h, err := l.factory(l.namespace)
		if err != nil {
			return nil, Fail("check --kubeconfig and --context", "Helm client: %v", err)
		}
		l.client = h
	}
	return l.client, nil
}

// helmRelease is one release vaultctl manages with the embedded chart: observe it as a change
// (or a fact), and upgrade-or-install it. The server and injector phases share it.
type helmRelease struct {
	helm      *lazyHelm
	name      string
	namespace string
	chart     *chart.Chart
	values    map[string]any
}

func (r helmRelease) object() string { return "Helm release " + r.namespace + "/" + r.name }

func (r helmRelease) chartName() string {
	return r.chart.Metadata.Name + "-" + r.chart.Metadata.Version
}

// status reports whether the release exists and whether an upgrade would write a revision.
func (r helmRelease) status(ctx context.Context) (helmclient.Status, error) {
	h, err := r.helm.get()
	if err != nil {
		return helmclient.Status{}, err
	}
	st, err := h.Status(ctx, r.name, r.chart, r.values)
	if err != nil {
		return helmclient.Status{}, helmFailure(err, r.namespace)
	}
	return st, nil
}

// change turns a status into the change apply would make, or nil and a fact when it is
// deployed as wanted. createDetail describes a first install.
func (r helmRelease) change(st helmclient.Status, createDetail string) (*Change, string) {
	switch {
	case !st.Exists:
		return &Change{Action: Create, Object: r.object(), Detail: createDetail}, ""
	case st.Differs:
		return &Change{Action: Update, Object: r.object(), Detail: fmt.Sprintf("revision %d: %s", st.Revision, st.Reason)}, ""
	}
	return nil, fmt.Sprintf("%s revision %d deployed (chart %s)", r.object(), st.Revision, r.chartName())
}

// upgrade installs or upgrades the release, reporting progress.
func (r helmRelease) upgrade(ctx context.Context) error {
	h, err := r.helm.get()
	if err != nil {
		return err
	}
	progressf(ctx, "helm upgrade --install %s/%s (chart %s)", r.namespace, r.name, r.chartName())
	res, err := h.UpgradeOrInstall(ctx, r.name, r.chart, r.values)
	if err != nil {
		return helmFailure(err, r.namespace)
	}
	if res.Changed {
		progressf(ctx, "release %s/%s at revision %d", r.namespace, r.name, res.Revision)
	}
	return nil
}

func helmFailure(err error, ns string) error {
	if errors.Is(err, context.Canceled) || errors.Is(err, context.DeadlineExceeded) {
		return err
	}
	var pe *helmclient.PendingError
	if errors.As(err, &pe) {
		return Fail(fmt.Sprintf("if no helm command runs against it, run vaultctl apply again in %s: the interrupted revision is then marked failed and replaced (`helm history %s -n %s`)",
			pe.Wait.Round(time.Second), pe.Release, ns), "%v", err)
	}
	// The release is named in err.
	return Fail(fmt.Sprintf("see `helm list -a -n %s`, `helm history RELEASE -n %s` and `kubectl get events -n %s`; fix the cause and run vaultctl apply again (a failed install is rolled back)",
		ns, ns, ns), "%v", err)
}
