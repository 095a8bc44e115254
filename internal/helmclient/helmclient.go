// Package helmclient is vaultctl's narrow adapter over the Helm SDK (helm.sh/helm/v3/pkg/action).
// Releases live in the "secret" storage driver of their namespace, exactly where the helm CLI
// keeps them, so `helm list -n NS`, `helm history` and `helm rollback` work on them.
//
// UpgradeOrInstall is the logic of `helm upgrade --install` (which lives in Helm's cmd layer,
// not in the SDK), with one difference: when the chart and values would render the manifest
// that is already deployed, it does nothing, so a repeated apply creates no new revision.
package helmclient

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"sort"
	"strings"
	"sync"
	"time"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/kube"
	"helm.sh/helm/v3/pkg/release"
	"helm.sh/helm/v3/pkg/releaseutil"
	"helm.sh/helm/v3/pkg/storage/driver"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/meta"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/discovery"
	"k8s.io/client-go/discovery/cached/memory"
	"k8s.io/client-go/rest"
	"k8s.io/client-go/restmapper"
	"k8s.io/client-go/tools/clientcmd"
	clientcmdapi "k8s.io/client-go/tools/clientcmd/api"
	"sigs.k8s.io/yaml"
)

// Options say how to reach the cluster and how long Helm may take.
type Options struct {
	// REST is used when set; otherwise Kubeconfig (empty: default loading rules) and Context.
	REST       *rest.Config
	Kubeconfig string
	Context    string
	// Namespace of the releases and of the objects they hold.
	Namespace string
	// Timeout bounds one install or upgrade including Helm's own wait (default 5 minutes).
	Timeout time.Duration
	// MaxHistory is how many revisions are kept per release (default 10).
	MaxHistory int
	// PendingGrace is how old a pending revision must be before UpgradeOrInstall takes it for
	// the leftover of a killed run and marks it failed (default: Timeout). Younger, it may be an
	// install or upgrade still running elsewhere, and UpgradeOrInstall returns a *PendingError.
	PendingGrace time.Duration
	// Description is recorded on each revision (helm history shows it).
	Description string
	// Log receives Helm's debug lines; nil discards them.
	Log func(format string, args ...any)
}

// Client installs and upgrades releases in one namespace.
type Client struct {
	cfg  *action.Configuration
	opts Options
}

// Result of UpgradeOrInstall.
type Result struct {
	Changed   bool // a new revision was written
	Installed bool // it was the first revision
	Revision  int  // the release's current revision
}

// Status is what applying a chart to a release would do.
type Status struct {
	Exists   bool     // the release has a history
	Revision int      // its last revision
	State    string   // the last revision's status: deployed, failed, pending-upgrade...
	Differs  bool     // UpgradeOrInstall would write a new revision
	Reason   string   // why it differs, for people
	Objects  []string // "Kind/name" of rendered objects that would be created, changed or deleted
}

// New returns a client whose release storage is the "secret" driver in o.Namespace.
func New(o Options) (*Client, error) {
	if o.Namespace == "" {
		return nil, errors.New("helmclient: no namespace")
	}
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.MaxHistory <= 0 {
		o.MaxHistory = 10
	}
	if o.PendingGrace <= 0 {
		o.PendingGrace = o.Timeout
	}
	if o.Description == "" {
		o.Description = "applied by vaultctl"
	}
	logf := o.Log
	if logf == nil {
		logf = func(string, ...any) {}
	}
	var getter genericclioptions.RESTClientGetter
	if o.REST != nil {
		getter = newRESTGetter(o.REST, o.Namespace)
	} else {
		f := genericclioptions.NewConfigFlags(false)
		f.KubeConfig, f.Context, f.Namespace = &o.Kubeconfig, &o.Context, &o.Namespace
		f.WrapConfigFn = tuneRate
		getter = f
	}
	cfg := new(action.Configuration)
	if err := cfg.Init(getter, o.Namespace, "secret", logf); err != nil {
		return nil, fmt.Errorf("helm: %w", err)
	}
	if kc, ok := cfg.KubeClient.(*kube.Client); ok {
		kc.Namespace = o.Namespace
	}
	return &Client{cfg: cfg, opts: o}, nil
}

// NewWithConfiguration wraps an action.Configuration built elsewhere (tests use Helm's memory
// driver and fake kube client).
func NewWithConfiguration(cfg *action.Configuration, o Options) *Client {
	if o.Timeout <= 0 {
		o.Timeout = 5 * time.Minute
	}
	if o.MaxHistory <= 0 {
		o.MaxHistory = 10
	}
	if o.PendingGrace <= 0 {
		o.PendingGrace = o.Timeout
	}
	return &Client{cfg: cfg, opts: o}
}

// Get returns the last revision of a release; the error wraps driver.ErrReleaseNotFound when
// there is none.
func (c *Client) Get(name string) (*release.Release, error) {
	return c.cfg.Releases.Last(name)
}

// Uninstall removes a release and the objects it holds.
func (c *Client) Uninstall(name string) error {
	u := action.NewUninstall(c.cfg)
	u.Timeout = c.opts.Timeout
	_, err := u.Run(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return nil
	}
	return err
}

// Status reports whether UpgradeOrInstall would change the release, without changing anything.
// For a deployed release it renders the upgrade as Helm would (a dry-run upgrade against the
// cluster) and compares manifest, values and chart version with the deployed revision.
func (c *Client) Status(ctx context.Context, name string, ch *chart.Chart, vals map[string]any) (Status, error) {
	last, err := c.cfg.Releases.Last(name)
	if errors.Is(err, driver.ErrReleaseNotFound) {
		return Status{Differs: true, Reason: "not installed"}, nil
	}
	if err != nil {
		return Status{}, fmt.Errorf("reading release %s: %w", name, err)
	}
	st := Status{Exists: true, Revision: last.Version, State: last.Info.Status.String()}
	switch s := last.Info.Status; {
	case s == release.StatusUninstalled:
		st.Differs, st.Reason = true, "uninstalled; it will be installed again"
	case s.IsPending():
		st.Differs, st.Reason = true, fmt.Sprintf("revision %d is %s: an earlier run was interrupted", last.Version, s)
	case s != release.StatusDeployed:
		st.Differs, st.Reason = true, fmt.Sprintf("revision %d is %s", last.Version, s)
		if d := last.Info.Description; d != "" {
			st.Reason += ": " + d
		}
	default:
		st.Objects, st.Reason, err = c.changes(ctx, last, ch, vals)
		if err != nil {
			return Status{}, err
		}
		st.Differs = st.Reason != ""
	}
	return st, nil
}

// UpgradeOrInstall installs the release when it has no history, upgrades it when the rendered
// manifest, values or chart differ from the deployed revision, and otherwise does nothing.
// Install and upgrade are atomic: a failure rolls back (an install is uninstalled). Helm's own
// wait ends quickly for an OnDelete StatefulSet, which Helm counts as ready: callers wait for
// their pods themselves.
func (c *Client) UpgradeOrInstall(ctx context.Context, name string, ch *chart.Chart, vals map[string]any) (Result, error) {
	hist, err := c.cfg.Releases.History(name)
	if err != nil && !errors.Is(err, driver.ErrReleaseNotFound) {
		return Result{}, fmt.Errorf("reading release %s: %w", name, err)
	}
	if len(hist) == 0 {
		return c.install(ctx, name, ch, vals, false)
	}
	releaseutil.Reverse(hist, releaseutil.SortByRevision)
	last := hist[0]
	switch s := last.Info.Status; {
	case s == release.StatusUninstalled:
		return c.install(ctx, name, ch, vals, true)
	case s.IsPending():
		if err := c.recoverPending(last); err != nil {
			return Result{}, err
		}
	case s == release.StatusDeployed:
		_, why, err := c.changes(ctx, last, ch, vals)
		if err != nil {
			return Result{}, err
		}
		if why == "" {
			return Result{Revision: last.Version}, nil
		}
	}
	return c.upgrade(ctx, name, ch, vals)
}

// PendingError says that the last revision is pending and too young to be taken for the
// leftover of a killed run.
type PendingError struct {
	Release  string
	Revision int
	Status   string
	Age      time.Duration // since the pending operation started
	Wait     time.Duration // until UpgradeOrInstall will take over
}

func (e *PendingError) Error() string {
	return fmt.Sprintf("release %s revision %d is %s since %s ago: another install or upgrade may be running",
		e.Release, e.Revision, e.Status, e.Age.Round(time.Second))
}

// recoverPending marks a revision left pending by a killed run as failed, so the upgrade can
// proceed (Helm refuses to upgrade a pending release). A pending revision younger than
// PendingGrace may belong to an operation still running elsewhere: that is refused instead.
func (c *Client) recoverPending(last *release.Release) error {
	age := time.Since(last.Info.LastDeployed.Time)
	if age < c.opts.PendingGrace {
		return &PendingError{Release: last.Name, Revision: last.Version, Status: last.Info.Status.String(),
			Age: age, Wait: c.opts.PendingGrace - age}
	}
	last.SetStatus(release.StatusFailed, fmt.Sprintf("interrupted while %s; marked failed by vaultctl", last.Info.Status))
	if err := c.cfg.Releases.Update(last); err != nil {
		return fmt.Errorf("marking interrupted revision %d of %s failed: %w", last.Version, last.Name, err)
	}
	return nil
}

func (c *Client) install(ctx context.Context, name string, ch *chart.Chart, vals map[string]any, replace bool) (Result, error) {
	in := action.NewInstall(c.cfg)
	in.ReleaseName = name
	in.Namespace = c.opts.Namespace
	in.CreateNamespace = true
	in.Atomic = true // implies Wait
	in.Replace = replace
	in.Timeout = c.opts.Timeout
	in.Description = c.opts.Description
	rel, err := in.RunWithContext(ctx, ch, vals)
	if err != nil {
		return Result{}, fmt.Errorf("helm install %s: %w", name, err)
	}
	return Result{Changed: true, Installed: true, Revision: rel.Version}, nil
}

func (c *Client) upgrade(ctx context.Context, name string, ch *chart.Chart, vals map[string]any) (Result, error) {
	up := c.newUpgrade()
	up.Atomic = true // implies Wait
	up.CleanupOnFail = true
	rel, err := up.RunWithContext(ctx, name, ch, vals)
	if err != nil {
		return Result{}, fmt.Errorf("helm upgrade %s: %w", name, err)
	}
	return Result{Changed: true, Revision: rel.Version}, nil
}

// changes compares the deployed revision with what an upgrade would write, and checks that the
// deployed objects still exist: an object deleted behind Helm's back is drift the upgrade repairs
// (Helm recreates what is missing). The empty reason means "nothing to do".
func (c *Client) changes(ctx context.Context, last *release.Release, ch *chart.Chart, vals map[string]any) ([]string, string, error) {
	next, err := c.dryRun(ctx, last.Name, ch, vals)
	if err != nil {
		return nil, "", err
	}
	objects, why := compare(last, next)
	if why != "" {
		return objects, why, nil
	}
	missing, err := c.missing(last.Manifest)
	if err != nil {
		return nil, "", fmt.Errorf("checking the objects of release %s: %w", last.Name, err)
	}
	if len(missing) > 0 {
		return missing, "deleted outside Helm: " + strings.Join(missing, ", "), nil
	}
	return nil, "", nil
}

// missing lists the objects of a manifest that do not exist in the cluster.
func (c *Client) missing(manifest string) ([]string, error) {
	list, err := c.cfg.KubeClient.Build(bytes.NewBufferString(manifest), false)
	if err != nil {
		return nil, err
	}
	var out []string
	for _, info := range list {
		err := info.Get()
		switch {
		case apierrors.IsNotFound(err):
			key := info.Mapping.GroupVersionKind.Kind + "/" + info.Name
			if info.Namespace != "" {
				key = info.Mapping.GroupVersionKind.Kind + "/" + info.Namespace + "/" + info.Name
			}
			out = append(out, key)
		case err != nil:
			return nil, err
		}
	}
	sort.Strings(out)
	return out, nil
}

func (c *Client) dryRun(ctx context.Context, name string, ch *chart.Chart, vals map[string]any) (*release.Release, error) {
	up := c.newUpgrade()
	up.DryRun = true
	// Fetching the OpenAPI schemas is three quarters of a dry run's time. The comparison needs
	// only the rendered manifest; the real install or upgrade still validates against them.
	up.DisableOpenAPIValidation = true
	rel, err := up.RunWithContext(ctx, name, ch, vals)
	if err != nil {
		return nil, fmt.Errorf("helm upgrade --dry-run %s: %w", name, err)
	}
	return rel, nil
}

func (c *Client) newUpgrade() *action.Upgrade {
	up := action.NewUpgrade(c.cfg)
	up.Namespace = c.opts.Namespace
	up.Timeout = c.opts.Timeout
	up.MaxHistory = c.opts.MaxHistory
	up.Description = c.opts.Description
	// The given values are the whole truth: never merge in the previous revision's.
	up.ResetValues = true
	return up
}

// compare says whether next would change the deployed release cur, and which objects differ.
// The empty reason means "no change".
func compare(cur, next *release.Release) (objects []string, reason string) {
	objects = diffManifests(cur.Manifest, next.Manifest)
	var why []string
	if len(objects) > 0 {
		why = append(why, "manifest: "+strings.Join(objects, ", "))
	}
	if !sameValues(cur.Config, next.Config) {
		why = append(why, "values")
	}
	if v0, v1 := chartVersion(cur), chartVersion(next); v0 != v1 {
		why = append(why, fmt.Sprintf("chart %s -> %s", v0, v1))
	}
	return objects, strings.Join(why, "; ")
}

func chartVersion(r *release.Release) string {
	if r.Chart == nil || r.Chart.Metadata == nil {
		return ""
	}
	return r.Chart.Metadata.Name + "-" + r.Chart.Metadata.Version
}

// sameValues compares values through JSON: stored values come back with float64 numbers.
func sameValues(a, b map[string]any) bool {
	if len(a) == 0 && len(b) == 0 {
		return true
	}
	ja, err1 := json.Marshal(a)
	jb, err2 := json.Marshal(b)
	return err1 == nil && err2 == nil && bytes.Equal(ja, jb)
}

// diffManifests lists the objects ("Kind/name") that are added, removed or changed.
func diffManifests(cur, next string) []string {
	a, b := objectsOf(cur), objectsOf(next)
	var out []string
	for k, v := range b {
		if w, ok := a[k]; !ok || w != v {
			out = append(out, k)
		}
	}
	for k := range a {
		if _, ok := b[k]; !ok {
			out = append(out, k+" (removed)")
		}
	}
	sort.Strings(out)
	return out
}

// objectsOf maps "Kind/name" (namespaced objects: "Kind/namespace/name") to the object's
// normalised JSON, so comments and key order do not count as changes.
func objectsOf(manifest string) map[string]string {
	out := map[string]string{}
	for _, doc := range releaseutil.SplitManifests(manifest) {
		var obj map[string]any
		if err := yaml.Unmarshal([]byte(doc), &obj); err != nil || len(obj) == 0 {
			// Not YAML Helm could have applied; keep its text so any change shows.
			out["document/"+fmt.Sprint(len(out))] = doc
			continue
		}
		kind, _ := obj["kind"].(string)
		md, _ := obj["metadata"].(map[string]any)
		name, _ := md["name"].(string)
		key := kind + "/" + name
		if ns, _ := md["namespace"].(string); ns != "" {
			key = kind + "/" + ns + "/" + name
		}
		j, _ := json.Marshal(obj)
		out[key] = string(j)
	}
	return out
}

// tuneRate lifts client-go's default 5 requests/s, as the helm CLI does: an upgrade makes a
// burst of requests.
func tuneRate(c *rest.Config) *rest.Config {
	if c.QPS == 0 {
		c.QPS = 50
	}
	if c.Burst == 0 {
		c.Burst = 100
	}
	return c
}

// restGetter is a RESTClientGetter over an existing rest.Config, with discovery cached in
// memory for the life of the client.
type restGetter struct {
	cfg *rest.Config
	ns  string

	once   sync.Once
	disco  discovery.CachedDiscoveryInterface
	mapper meta.RESTMapper
	err    error
}

func newRESTGetter(cfg *rest.Config, ns string) *restGetter {
	return &restGetter{cfg: tuneRate(rest.CopyConfig(cfg)), ns: ns}
}

func (g *restGetter) ToRESTConfig() (*rest.Config, error) { return rest.CopyConfig(g.cfg), nil }

func (g *restGetter) init() {
	g.once.Do(func() {
		dc, err := discovery.NewDiscoveryClientForConfig(rest.CopyConfig(g.cfg))
		if err != nil {
			g.err = err
			return
		}
		g.disco = memory.NewMemCacheClient(dc)
		g.mapper = restmapper.NewShortcutExpander(restmapper.NewDeferredDiscoveryRESTMapper(g.disco), g.disco, nil)
	})
}

func (g *restGetter) ToDiscoveryClient() (discovery.CachedDiscoveryInterface, error) {
	g.init()
	return g.disco, g.err
}

func (g *restGetter) ToRESTMapper() (meta.RESTMapper, error) {
	g.init()
	return g.mapper, g.err
}

// ToRawKubeConfigLoader only answers the namespace; everything else comes from the rest.Config.
func (g *restGetter) ToRawKubeConfigLoader() clientcmd.ClientConfig {
	return clientcmd.NewDefaultClientConfig(*clientcmdapi.NewConfig(), &clientcmd.ConfigOverrides{Context: clientcmdapi.Context{Namespace: g.ns}})
}
