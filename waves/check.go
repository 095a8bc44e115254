package waves

import (
	"bytes"
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"sigs.k8s.io/yaml"

	"github.com/vaultctl/vaultctl/check"
	"github.com/vaultctl/vaultctl/migrate"
)

// guardAdmits are the Secret types the admission policy admits (manifests/admission): what the
// CI guard allows live is not a finding of its gate either.
var guardAdmits = []string{"helm.sh/release.v1", "kubernetes.io/dockerconfigjson", "kubernetes.io/service-account-token", "kubernetes.io/tls"}

// checkPassing runs check's rules over the live objects of the namespaces the earlier waves
// migrated (only a wave's workloads when it names them), and over the --manifests directory.
// Those namespaces are the ones that must stay clean; a wave's own namespaces still hold the
// raw Secrets it is about to migrate, so checking them first could never pass.
func (ge *gateEval) checkPassing(ctx context.Context, scope []scoped, gate string) GateResult {
	key := fmt.Sprint(scope)
	if r, ok := ge.checks[key]; ok {
		r.Gate = gate
		return r
	}
	r := ge.runCheck(ctx, scope)
	r.Gate = gate
	if ge.checks == nil {
		ge.checks = map[string]GateResult{}
	}
	ge.checks[key] = r
	return r
}

func (ge *gateEval) runCheck(ctx context.Context, scope []scoped) GateResult {
	cfg := ge.o.Config
	r := GateResult{}
	var findings []check.Finding
	var checked []string
	if len(scope) > 0 {
		stream, namespaces, objects, err := ge.liveObjects(ctx, scope)
		if err != nil {
			r.Evidence, r.Fix = err.Error(), "check vaultctl's read access to those namespaces"
			return r
		}
		var mounts []string
		for _, m := range cfg.KV {
			mounts = append(mounts, m.Path)
		}
		// No Config: the roles migrate created live in Vault, not in the config, so
		// policy-mismatch would report every migrated workload.
		rep, err := check.Run(ctx, check.Options{Namespaces: namespaces, KVMounts: mounts,
			AllowSecretTypes: append(append([]string{}, cfg.Check.AllowSecretTypes...), guardAdmits...)},
			[]string{"-"}, bytes.NewReader(stream))
		if err != nil {
			r.Evidence, r.Fix = "checking the live objects: "+err.Error(), "report this as a vaultctl bug"
			return r
		}
		findings = append(findings, rep.Findings...)
		checked = append(checked, fmt.Sprintf("%s live in %s", plural(objects, "object"), strings.Join(namespaces, ", ")))
	}
	if dir := ge.o.Manifests; dir != "" {
		rep, err := check.Run(ctx, check.Options{Config: cfg}, []string{dir}, nil)
		if err != nil {
			r.Evidence, r.Fix = fmt.Sprintf("checking %s: %v", dir, err), "give --manifests a directory of manifests"
			return r
		}
		findings = append(findings, rep.Findings...)
		checked = append(checked, fmt.Sprintf("%s in %s", plural(rep.Files, "file"), dir))
	}
	if len(checked) == 0 {
		r.OK, r.Evidence = true, "nothing to check yet: no earlier wave migrated a namespace, and no --manifests"
		return r
	}
	if len(findings) == 0 {
		r.OK, r.Evidence = true, "no findings in "+strings.Join(checked, " and ")
		return r
	}
	var shown, fixes []string
	for i, f := range findings {
		if i == 5 {
			shown = append(shown, fmt.Sprintf("and %d more", len(findings)-i))
			break
		}
		where := f.File
		if f.File == check.StdinName {
			where = "live"
		}
		shown = append(shown, fmt.Sprintf("%s %s/%s/%s: %s (%s)", where, f.Namespace, f.Kind, f.Name, f.Message, f.Rule))
		fixes = append(fixes, f.Fix)
	}
	r.Evidence = fmt.Sprintf("%s in %s: %s", plural(len(findings), "finding"), strings.Join(checked, " and "), strings.Join(shown, "; "))
	r.Fix = strings.Join(dedupe(fixes), "; ")
	return r
}

// liveObjects renders the scope's Secrets and workloads as one YAML stream for check: values
// are left out (check needs a Secret's type and name, never its data), and so are the Secrets
// migrate's journal records as copied to KV, unchanged since: they wait for --prune, which is
// the namespace owner's call.
func (ge *gateEval) liveObjects(ctx context.Context, scope []scoped) ([]byte, []string, int, error) {
	var buf bytes.Buffer
	var namespaces []string
	objects := 0
	add := func(o runtime.Object, gvk schema.GroupVersionKind) error {
		o.GetObjectKind().SetGroupVersionKind(gvk)
		if m, ok := o.(metav1.Object); ok {
			m.SetManagedFields(nil)
		}
		b, err := yaml.Marshal(o)
		if err != nil {
			return err
		}
		buf.WriteString("---\n")
		buf.Write(b)
		objects++
		return nil
	}
	cs := ge.o.Kube
	for _, sc := range scope {
		n, err := ge.o.observeNamespace(ctx, ge.obs, sc.ns, false)
		if err != nil {
			return nil, nil, 0, err
		}
		if !n.exists {
			continue
		}
		namespaces = append(namespaces, sc.ns)
		secrets, err := cs.CoreV1().Secrets(sc.ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return nil, nil, 0, fmt.Errorf("listing Secrets in %s: %w", sc.ns, err)
		}
		for _, s := range secrets.Items {
			if rec, ok := n.journal.Secrets[s.Name]; ok && rec.State == migrate.SecretCopied && rec.UID == string(s.UID) && rec.Version == s.ResourceVersion {
				continue
			}
			keys := map[string][]byte{}
			for k := range s.Data {
				keys[k] = nil
			}
			bare := corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: s.Name, Namespace: s.Namespace, Labels: s.Labels, Annotations: s.Annotations}, Type: s.Type, Data: keys}
			if err := add(&bare, corev1.SchemeGroupVersion.WithKind("Secret")); err != nil {
				return nil, nil, 0, err
			}
		}
		limit := map[string]bool{}
		for _, wl := range sc.workloads {
			if id, err := migrate.ParseWorkload(wl); err == nil {
				limit[id.String()] = true
			}
		}
		if err := ge.liveWorkloads(ctx, sc.ns, limit, add); err != nil {
			return nil, nil, 0, err
		}
	}
	sort.Strings(namespaces)
	return buf.Bytes(), namespaces, objects, nil
}

func (ge *gateEval) liveWorkloads(ctx context.Context, ns string, limit map[string]bool, add func(runtime.Object, schema.GroupVersionKind) error) error {
	cs := ge.o.Kube
	want := func(kind, name string) bool { return len(limit) == 0 || limit[kind+"/"+name] }
	apps := func(kind string) schema.GroupVersionKind {
		return schema.GroupVersionKind{Group: "apps", Version: "v1", Kind: kind}
	}
	opts := metav1.ListOptions{}
	deps, err := cs.AppsV1().Deployments(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("listing Deployments in %s: %w", ns, err)
	}
	for i := range deps.Items {
		if d := &deps.Items[i]; want("Deployment", d.Name) {
			if err := add(d, apps("Deployment")); err != nil {
				return err
			}
		}
	}
	sts, err := cs.AppsV1().StatefulSets(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("listing StatefulSets in %s: %w", ns, err)
	}
	for i := range sts.Items {
		if s := &sts.Items[i]; want("StatefulSet", s.Name) {
			if err := add(s, apps("StatefulSet")); err != nil {
				return err
			}
		}
	}
	dss, err := cs.AppsV1().DaemonSets(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("listing DaemonSets in %s: %w", ns, err)
	}
	for i := range dss.Items {
		if d := &dss.Items[i]; want("DaemonSet", d.Name) {
			if err := add(d, apps("DaemonSet")); err != nil {
				return err
			}
		}
	}
	cjs, err := cs.BatchV1().CronJobs(ns).List(ctx, opts)
	if err != nil {
		return fmt.Errorf("listing CronJobs in %s: %w", ns, err)
	}
	for i := range cjs.Items {
		if c := &cjs.Items[i]; want("CronJob", c.Name) {
			if err := add(c, schema.GroupVersionKind{Group: "batch", Version: "v1", Kind: "CronJob"}); err != nil {
				return err
			}
		}
	}
	return nil
}

func dedupe(s []string) []string {
	seen := map[string]bool{}
	var out []string
	for _, x := range s {
		if x != "" && !seen[x] {
			seen[x] = true
			out = append(out, x)
		}
	}
	return out
}
