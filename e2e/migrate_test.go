package e2e

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"slices"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	admissionregistrationv1 "k8s.io/api/admissionregistration/v1"
	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/apimachinery/pkg/util/intstr"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/manifests"
	"github.com/vaultctl/vaultctl/migrate"
)

// injectorLabel keeps each test estate's injector to its own app namespaces: two injectors that
// see one namespace both get its pods, and the first by name injects them.
const injectorLabel = "e2e.vaultctl.io/injector"

// migrateRunDoc is `vaultctl migrate namespace NS --yes -o json`.
type migrateRunDoc struct {
	migratePlanDoc
	Report *migrate.Report `json:"report"`
}

// migrateEstate is an external Vault cluster installed by vaultctl apply, whose injector sees
// only the namespaces labelled for it.
type migrateEstate struct {
	vc       *sandbox.VaultCluster
	vns      string
	cfg      string
	auditDir string
}

func newMigrateEstate(t *testing.T, vns string) *migrateEstate {
	t.Helper()
	return newMigrateEstateWith(t, vns, externalConfig{})
}

// newMigrateEstateWith is newMigrateEstate with more of the config chosen (the namespace,
// address and audit directory are the estate's).
func newMigrateEstateWith(t *testing.T, vns string, c externalConfig) *migrateEstate {
	t.Helper()
	e := &migrateEstate{vc: startVaultCluster(t), vns: vns, auditDir: t.TempDir()}
	os.Chmod(e.auditDir, 0o777)
	e.cfg = filepath.Join(t.TempDir(), "vaultctl.yaml")
	c.Namespace, c.Addr, c.AuditDir = vns, e.vc.Addrs[0], e.auditDir
	writeExternalConfig(t, e.cfg, c) // its injector sees only namespaces labelled for vns
	if res := vaultctl(t, "apply", "-c", e.cfg, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("apply of the estate failed:\n%s", res)
	}
	return e
}

// appNamespace creates ns labelled for the estate's injector.
func (e *migrateEstate) appNamespace(t *testing.T, cs kubernetes.Interface, ns string) {
	t.Helper()
	_, err := cs.CoreV1().Namespaces().Create(context.Background(), &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{injectorLabel: e.vns}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
}

func (e *migrateEstate) migrate(t *testing.T, ns string, args ...string) (migrateRunDoc, cliResult) {
	t.Helper()
	r := vaultctl(t, append([]string{"migrate", "namespace", ns, "-c", e.cfg, "-o", "json"}, args...)...)
	var doc migrateRunDoc
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
		t.Fatalf("migrate output is not one JSON document: %v\n%s", err, r)
	}
	return doc, r
}

// seen is what one container of a workload sees: the env variables and files that came from
// Secrets (the ServiceAccount token is the pod's own and differs by design).
type seen struct {
	Env   map[string]string
	Files map[string][]byte
	Modes map[string]os.FileMode
}

// workloadPods are the pods the scenario compares, by workload: name prefix and container.
var workloadViews = []struct{ workload, podPrefix, container string }{
	{"Deployment/web", "web-", "app"},
	{"Deployment/worker", "worker-", "run"},
	{"StatefulSet/postgres", "postgres-0", "init-db"},
}

// views returns what each compared container sees now, from the pods that run the workload's
// current template (injected or not, as want says), once they are Running.
func views(t *testing.T, cs kubernetes.Interface, ns string, injected bool, timeout time.Duration) map[string]seen {
	t.Helper()
	out := map[string]seen{}
	for _, wv := range workloadViews {
		out[wv.workload] = podView(t, cs, ns, wv.podPrefix, wv.container, injected, timeout)
	}
	return out
}

// podView is what one container sees of its Secrets in the first Running, Ready pod named
// podPrefix* that is injected or not, as want says.
func podView(t *testing.T, cs kubernetes.Interface, ns, podPrefix, container string, injected bool, timeout time.Duration) seen {
	t.Helper()
	ctx := context.Background()
	var pod *corev1.Pod
	eventually(t, timeout, fmt.Sprintf("a Running pod %s%s* (injected %t)", ns+"/", podPrefix, injected), func() error {
		pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		for i := range pods.Items {
			p := &pods.Items[i]
			isInjected := p.Annotations["vault.hashicorp.com/agent-inject-status"] == "injected"
			if strings.HasPrefix(p.Name, podPrefix) && p.DeletionTimestamp == nil && isInjected == injected && p.Status.Phase == corev1.PodRunning && podReady(p) {
				pod = p
				return nil
			}
		}
		return fmt.Errorf("none yet")
	})
	eff, err := sb.Effective(ctx, ns, pod.Name, container)
	if err != nil {
		t.Fatalf("effective view of %s/%s -c %s: %v", ns, pod.Name, container, err)
	}
	s := seen{Env: map[string]string{}, Files: map[string][]byte{}, Modes: map[string]os.FileMode{}}
	for k, v := range eff.Env {
		s.Env[k] = v
	}
	for p, b := range eff.Files {
		if strings.HasPrefix(p, "/var/run/secrets/") || strings.HasPrefix(p, "/vault/") {
			continue // the pod's own token; the agent's env files (not seen before)
		}
		s.Files[p], s.Modes[p] = b, eff.Modes[p]
	}
	return s
}

// sameView compares, byte for byte, every env variable and file seen before with after.
func sameView(t *testing.T, workload string, before, after seen) {
	t.Helper()
	for k, v := range before.Env {
		if k == "HOSTNAME" || strings.HasPrefix(k, "KUBERNETES_") {
			continue
		}
		if got, ok := after.Env[k]; !ok || got != v {
			t.Errorf("%s: env %s differs after the migration (present %t, %d bytes before, %d after)", workload, k, ok, len(v), len(got))
		}
	}
	for p, b := range before.Files {
		got, ok := after.Files[p]
		if !ok || !bytes.Equal(got, b) {
			t.Errorf("%s: file %s differs after the migration (present %t, %d bytes before, %d after)", workload, p, ok, len(b), len(got))
			continue
		}
		if after.Modes[p].Perm() != before.Modes[p].Perm() {
			t.Errorf("%s: file %s has mode %o after the migration, %o before", workload, p, after.Modes[p].Perm(), before.Modes[p].Perm())
		}
	}
	if len(before.Env)+len(before.Files) == 0 {
		t.Errorf("%s: nothing was seen before the migration: the comparison proves nothing", workload)
	}
}

type secretState struct {
	Type        corev1.SecretType
	Data        map[string][]byte
	Labels      map[string]string
	Annotations map[string]string
}

func secretsOf(t *testing.T, cs kubernetes.Interface, ns string) map[string]secretState {
	t.Helper()
	list, err := cs.CoreV1().Secrets(ns).List(context.Background(), metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]secretState{}
	for _, s := range list.Items {
		out[s.Name] = secretState{s.Type, s.Data, s.Labels, s.Annotations}
	}
	return out
}

func templatesOf(t *testing.T, cs kubernetes.Interface, ns string) map[string]string {
	t.Helper()
	out := map[string]string{}
	for _, id := range []migrate.WorkloadID{{Kind: "Deployment", Name: "web"}, {Kind: "Deployment", Name: "worker"}, {Kind: "StatefulSet", Name: "postgres"}, {Kind: "CronJob", Name: "backup"}} {
		tpl, err := migrate.ReadTemplate(context.Background(), cs, ns, id)
		if err != nil {
			t.Fatal(err)
		}
		b, _ := json.Marshal(tpl)
		out[id.String()] = string(b)
	}
	return out
}

func sortedNames[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// Issue 18's "Done when": a namespace built like a real one migrates through the real agent,
// and every workload sees the same env and files byte for byte; the plan is honest and a second
// run has nothing to do; --prune deletes only what it may and the label makes the admission
// policy deny a new raw Secret; --rollback restores every Secret and workload spec exactly; no
// value leaks anywhere.
func TestMigrateNamespaceEndToEnd(t *testing.T) {
	t.Parallel()
	const vns, ns = "mig-vault", "mig-app"
	e := newMigrateEstate(t, vns)
	cs := kube(t)
	ctx := context.Background()
	t.Run("proof-catches-a-broken-role", func(t *testing.T) {
		t.Parallel()
		testMigrateProofCatchesABrokenRole(t, e)
	})
	t.Run("rolled-back-by-itself", func(t *testing.T) {
		t.Parallel()
		testMigrateRolledBackByItself(t, e)
	})
	for i, kp := range migrateKillPoints {
		t.Run("killed-at-"+kp.name, func(t *testing.T) {
			t.Parallel()
			testMigrateKilled(t, e, i, kp)
		})
	}
	e.appNamespace(t, cs, ns)
	createObjects(t, cs, migrateNamespaceObjects(t, ns))

	before := views(t, cs, ns, false, 2*time.Minute)
	origSecrets, origTemplates := secretsOf(t, cs, ns), templatesOf(t, cs, ns)
	entry := `--entrypoint=Deployment/worker:run=["/usr/bin/worker"]`

	// The plan first: honest about what is kept, and nothing changes.
	doc, r := e.migrate(t, ns, "--plan", entry)
	if r.Code != 3 {
		t.Fatalf("plan: exit %d, want 3\n%s", r.Code, r)
	}
	kept := map[string]bool{}
	for _, s := range doc.Secrets {
		if s.Action == migrate.SecretKeep {
			kept[s.Name] = true
		}
	}
	for _, want := range []string{"regcred", "web-tls", "sh.helm.release.v1.shop.v1"} {
		if !kept[want] {
			t.Errorf("plan does not keep %s: %+v", want, doc.Secrets)
		}
	}

	doc, r = e.migrate(t, ns, "--yes", entry)
	if r.Code != 0 || doc.Report == nil {
		t.Fatalf("migrate: exit %d\n%s", r.Code, r)
	}
	for _, w := range doc.Report.Workloads {
		if w.State != migrate.WorkloadVerified {
			t.Errorf("%s: %s (%s), want verified", w.Workload, w.State, w.Message)
		}
	}
	if got := len(doc.Report.Workloads); got != 4 {
		t.Errorf("%d workloads migrated, want web, worker, postgres and backup: %+v", got, doc.Report.Workloads)
	}

	// What each container sees through the agent is what it saw from the Secrets.
	after := views(t, cs, ns, true, 3*time.Minute)
	for _, wv := range workloadViews {
		sameView(t, wv.workload, before[wv.workload], after[wv.workload])
	}
	if t.Failed() {
		return
	}

	// A second run has nothing to do, and the plan says so.
	if _, r := e.migrate(t, ns, "--plan", entry); r.Code != 0 {
		t.Errorf("plan after the migration: exit %d, want 0 (nothing to do)\n%s", r.Code, r)
	}
	if doc, r := e.migrate(t, ns, "--yes", entry); r.Code != 0 || (doc.Report != nil && len(doc.Report.Workloads) > 0 && slices.ContainsFunc(doc.Report.Workloads, func(w migrate.WorkloadOutcome) bool { return w.Changed })) {
		t.Errorf("second migrate changed something:\n%s", r)
	}

	// --prune deletes exactly the migrated Secrets, then labels the namespace.
	doc, r = e.migrate(t, ns, "--yes", "--prune", entry)
	if r.Code != 0 || doc.Report == nil || !doc.Report.Labelled {
		t.Fatalf("prune: exit %d\n%s", r.Code, r)
	}
	left := secretsOf(t, cs, ns)
	for name := range origSecrets {
		_, there := left[name]
		mustStay := kept[name]
		if there != mustStay {
			t.Errorf("after prune Secret %s present=%t, want %t", name, there, mustStay)
		}
	}
	ensureAdmissionPolicy(t)
	var denied error
	eventually(t, 30*time.Second, "the admission policy denying a raw Secret in the migrated namespace", func() error {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new-raw"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		if err == nil {
			cs.CoreV1().Secrets(ns).Delete(ctx, "new-raw", metav1.DeleteOptions{})
			return fmt.Errorf("accepted")
		}
		denied = err
		return nil
	})
	if !apierrors.IsForbidden(denied) && !apierrors.IsInvalid(denied) {
		t.Errorf("a new raw Secret in the migrated namespace: %v, want it denied", denied)
	}

	// --rollback: every Secret and workload spec as it was, field by field.
	doc, r = e.migrate(t, ns, "--yes", "--rollback")
	if r.Code != 0 {
		t.Fatalf("rollback: exit %d\n%s", r.Code, r)
	}
	back := secretsOf(t, cs, ns)
	for _, name := range sortedNames(origSecrets) {
		o, b := origSecrets[name], back[name]
		if o.Type != b.Type || !mapsEqualBytes(o.Data, b.Data) || !mapsEqual(o.Labels, b.Labels) || !mapsEqual(o.Annotations, b.Annotations) {
			t.Errorf("Secret %s after rollback differs from the original", name)
		}
	}
	gotTemplates := templatesOf(t, cs, ns)
	for id, tpl := range origTemplates {
		if gotTemplates[id] != tpl {
			t.Errorf("%s's pod template after rollback differs from the original:\n got %s\nwant %s", id, gotTemplates[id], tpl)
		}
	}
	nsObj, _ := cs.CoreV1().Namespaces().Get(ctx, ns, metav1.GetOptions{})
	if _, ok := nsObj.Labels[manifests.MigratedLabel]; ok {
		t.Error("the namespace is still labelled migrated after rollback")
	}

	var values []string
	for _, data := range migratePlanValues {
		for _, v := range data {
			if len(v) >= 8 {
				values = append(values, string(v))
			}
		}
	}
	scanForSecrets(t, vns, values, externalVault(e.vc, e.auditDir), migratedNamespace(ns, sortedNames(origSecrets)...))
}

func mapsEqual(a, b map[string]string) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func mapsEqualBytes(a, b map[string][]byte) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || !bytes.Equal(v, w) {
			return false
		}
	}
	return true
}

// ensureAdmissionPolicy installs vaultctl's admission policy unless it is there; a parallel test
// leaves it in place (TestAdmissionPolicyDeniesRawSecrets runs before the parallel ones).
func ensureAdmissionPolicy(t *testing.T) {
	t.Helper()
	cs := admissionClient(t)
	policy, binding := admissionObjects(t)
	ctx := context.Background()
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicies().Create(ctx, policy, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("admission policy: %v", err)
	}
	if _, err := cs.AdmissionregistrationV1().ValidatingAdmissionPolicyBindings().Create(ctx, binding, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
		t.Fatalf("admission policy binding: %v", err)
	}
}

// killPoint is a moment of a migrate run, seen in its journal.
type killPoint struct {
	name string
	hit  func(journal map[string]string) bool
}

func journalHas(prefix, state string) func(map[string]string) bool {
	return func(j map[string]string) bool {
		for k, v := range j {
			if strings.HasPrefix(k, prefix) && strings.Contains(v, `"state":"`+state+`"`) {
				return true
			}
		}
		return false
	}
}

var migrateKillPoints = []killPoint{
	{"secret-copied", journalHas("secret.", string(migrate.SecretCopied))},
	{"workload-backed-up", journalHas("workload.", string(migrate.WorkloadBackedUp))},
	{"workload-proved", journalHas("workload.", string(migrate.WorkloadProved))},
	{"workload-patched", journalHas("workload.", string(migrate.WorkloadPatched))},
	{"secret-pruned", journalHas("secret.", string(migrate.SecretPruned))},
}

// migrateKilledAt runs `migrate namespace NS --yes --prune` and SIGKILLs it on the journal
// write that reaches the point (a watch, so the run has little time to move on). It fails unless
// the run died of the signal.
func (e *migrateEstate) migrateKilledAt(t *testing.T, ns string, kp killPoint, args ...string) {
	t.Helper()
	cs := kube(t)
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Minute)
	defer cancel()
	cms := cs.CoreV1().ConfigMaps(ns)
	sel := fields.OneTermEqualSelector("metadata.name", migrate.JournalConfigMap).String()
	list, err := cms.List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatal(err)
	}
	rv := list.ResourceVersion
	w, err := cms.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
	if err != nil {
		t.Fatal(err)
	}
	defer func() { w.Stop() }()
	cmd := exec.Command(vaultctlBinary(t), append([]string{"migrate", "namespace", ns, "-c", e.cfg, "--yes", "--prune"}, args...)...)
	cmd.Env = append(append(os.Environ(), sb.Env()...), "CI=true")
	var out bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &out
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	exited := make(chan error, 1)
	go func() { exited <- cmd.Wait() }()
	defer recordOutput(out.String())
	for hit := false; !hit; {
		select {
		case err := <-exited:
			t.Fatalf("migrate ended (%v) before %s:\n%s", err, kp.name, out.String())
		case <-ctx.Done():
			_ = cmd.Process.Kill()
			<-exited
			t.Fatalf("migrate did not reach %s in time:\n%s", kp.name, out.String())
		case ev, ok := <-w.ResultChan():
			if !ok {
				if w, err = cms.Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv}); err != nil {
					t.Fatal(err)
				}
				continue
			}
			cm, isCM := ev.Object.(*corev1.ConfigMap)
			if !isCM {
				continue
			}
			rv = cm.ResourceVersion
			hit = kp.hit(cm.Data)
		}
	}
	if err := cmd.Process.Signal(syscall.SIGKILL); err != nil {
		t.Fatalf("SIGKILL at %s: %v (the run had ended)", kp.name, err)
	}
	<-exited
	if ws, ok := cmd.ProcessState.Sys().(syscall.WaitStatus); !ok || !ws.Signaled() || ws.Signal() != syscall.SIGKILL {
		t.Fatalf("migrate did not die of SIGKILL at %s (%s):\n%s", kp.name, cmd.ProcessState, out.String())
	}
}

// valuesSafe fails unless every original value is readable from its Kubernetes Secret or from
// its KV copy: the promise that holds at every instant of a migration.
func (e *migrateEstate) valuesSafe(t *testing.T, ns string, orig map[string]secretState, when string) {
	t.Helper()
	cs := kube(t)
	live := secretsOf(t, cs, ns)
	v := adminClient(t, e.vc.Addrs[0], e.vns)
	for name, o := range orig {
		if l, ok := live[name]; ok && mapsEqualBytes(l.Data, o.Data) {
			continue
		}
		kv, err := v.KVv2("secret").Get(context.Background(), ns+"/"+name)
		if err != nil {
			t.Errorf("%s: Secret %s is gone and its KV copy cannot be read: %v", when, name, err)
			continue
		}
		meta, err := v.KVv2("secret").GetMetadata(context.Background(), ns+"/"+name)
		if err != nil {
			t.Errorf("%s: Secret %s: KV metadata: %v", when, name, err)
			continue
		}
		got, err := migrate.DecodeKV(kv.Data, migrate.Base64KeysOf(stringMap(meta.CustomMetadata)))
		if err != nil || !mapsEqualBytes(got, o.Data) {
			t.Errorf("%s: Secret %s is gone and its KV copy differs (%v)", when, name, err)
		}
	}
}

func stringMap(m map[string]any) map[string]string {
	out := map[string]string{}
	for k, v := range m {
		if s, ok := v.(string); ok {
			out[k] = s
		}
	}
	return out
}

// Issue 18's "Done when": kill -9 of migrate at 5 different points, then a re-run, gives the
// same end state, with no value lost at any moment.
func testMigrateKilled(t *testing.T, e *migrateEstate, i int, kp killPoint) {
	cs := kube(t)
	ns := fmt.Sprintf("mig-kill-%d", i)
	e.appNamespace(t, cs, ns)
	createObjects(t, cs, migrateNamespaceObjects(t, ns))
	before := views(t, cs, ns, false, 2*time.Minute)
	orig := secretsOf(t, cs, ns)
	entry := `--entrypoint=Deployment/worker:run=["/usr/bin/worker"]`

	e.migrateKilledAt(t, ns, kp, entry)
	e.valuesSafe(t, ns, orig, "after the kill at "+kp.name)

	killed, _ := cs.CoreV1().ConfigMaps(ns).Get(context.Background(), migrate.JournalConfigMap, metav1.GetOptions{})
	doc, r := e.migrate(t, ns, "--yes", "--prune", entry)
	if r.Code != 0 || doc.Report == nil || !doc.Report.Labelled {
		if killed != nil {
			for k, v := range killed.Data {
				t.Logf("journal after the kill: %s = %s", k, v)
			}
		}
		for _, id := range []migrate.WorkloadID{{Kind: "StatefulSet", Name: "postgres"}, {Kind: "CronJob", Name: "backup"}} {
			if tpl, err := migrate.ReadTemplate(context.Background(), cs, ns, id); err == nil {
				t.Logf("live %s template %s", id, migrate.TemplateHash(*tpl))
			}
		}
		t.Fatalf("re-run after the kill at %s: exit %d\n%s", kp.name, r.Code, r)
	}
	e.valuesSafe(t, ns, orig, "after the re-run")
	after := views(t, cs, ns, true, 3*time.Minute)
	for _, wv := range workloadViews {
		sameView(t, wv.workload, before[wv.workload], after[wv.workload])
	}
	left := secretsOf(t, cs, ns)
	for _, name := range []string{"regcred", "web-tls", "sh.helm.release.v1.shop.v1"} {
		if _, ok := left[name]; !ok {
			t.Errorf("kept Secret %s was pruned", name)
		}
	}
	for _, name := range []string{"app-env", "db", "certs", "worker-env", "old-unused"} {
		if _, ok := left[name]; ok {
			t.Errorf("migrated Secret %s was not pruned", name)
		}
	}
	if _, r := e.migrate(t, ns, "--plan", entry); r.Code != 0 {
		t.Errorf("plan after the re-run: exit %d, want 0\n%s", r.Code, r)
	}
}

// Issue 18's "Done when": a role that cannot work is caught by the proof before any workload
// changes. Here a hand-made restriction on the role migrate will use (token_bound_cidrs, which
// migrate does not manage) refuses the logins; after it is lifted, the same run succeeds.
func testMigrateProofCatchesABrokenRole(t *testing.T, e *migrateEstate) {
	cs := kube(t)
	ctx := context.Background()
	const ns = "mig-proof"
	e.appNamespace(t, cs, ns)
	createObjects(t, cs, migrateNamespaceObjects(t, ns))
	entry := `--entrypoint=Deployment/worker:run=["/usr/bin/worker"]`
	orig := templatesOf(t, cs, ns)
	v := adminClient(t, e.vc.Addrs[0], e.vns)
	role := migrate.VaultName(ns, migrate.WorkloadID{Kind: "Deployment", Name: "web"})
	if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+role, map[string]any{
		"bound_service_account_names": "web", "bound_service_account_namespaces": ns, "token_bound_cidrs": "10.99.99.99/32",
	}); err != nil {
		t.Fatal(err)
	}
	doc, r := e.migrate(t, ns, "--yes", entry)
	if r.Code != 1 || doc.Report == nil {
		t.Fatalf("migrate with a role that refuses logins: exit %d, want 1\n%s", r.Code, r)
	}
	var web migrate.WorkloadOutcome
	for _, w := range doc.Report.Workloads {
		if w.Workload == "Deployment/web" {
			web = w
		}
	}
	if web.State != migrate.WorkloadFailed || !strings.Contains(web.Message, "proof") || !strings.Contains(web.Message, "refused") {
		t.Errorf("Deployment/web: %+v, want failed at the proof with the refusal", web)
	}
	if got := templatesOf(t, cs, ns)["Deployment/web"]; got != orig["Deployment/web"] {
		t.Error("Deployment/web was patched although its proof failed")
	}
	if _, err := v.Logical().WriteWithContext(ctx, "auth/kubernetes/role/"+role, map[string]any{"token_bound_cidrs": []string{}}); err != nil {
		t.Fatal(err)
	}
	if doc, r := e.migrate(t, ns, "--yes", entry); r.Code != 0 {
		t.Errorf("migrate after the role was fixed: exit %d\n%s", r.Code, r)
	} else if len(doc.Report.Workloads) == 0 {
		t.Error("nothing migrated after the fix")
	}
}

// Issue 18's "Done when": a workload forced past the proof whose pods stay in Init:0/1 is rolled
// back by itself. What the proof cannot see here is the injector: the one that selects this
// namespace first gives the agents an address where no Vault listens.
func testMigrateRolledBackByItself(t *testing.T, e *migrateEstate) {
	cs := kube(t)
	ctx := context.Background()
	const ns, sys = "mig-broken", "mig-broken-sys"
	ensureNamespace(t, cs, sys)
	t.Cleanup(func() { deleteNamespace(t, cs, sys) })
	brokenInjector(t, cs, sys, map[string]string{"e2e.vaultctl.io/broken": "true"})
	_, err := cs.CoreV1().Namespaces().Create(ctx, &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{
		Name: ns, Labels: map[string]string{injectorLabel: e.vns, "e2e.vaultctl.io/broken": "true"}}}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	createObjects(t, cs, migrateNamespaceObjects(t, ns))
	views(t, cs, ns, false, 2*time.Minute) // the workloads run before
	orig := templatesOf(t, cs, ns)
	doc, r := e.migrate(t, ns, "--yes", "--rollout-timeout", "40s", `--entrypoint=Deployment/worker:run=["/usr/bin/worker"]`)
	if r.Code != 1 || doc.Report == nil {
		t.Fatalf("migrate with agents that cannot reach Vault: exit %d, want 1\n%s", r.Code, r)
	}
	for _, w := range doc.Report.Workloads {
		if w.Workload == "CronJob/backup" {
			continue // nothing runs until its schedule: nothing to wait for
		}
		if w.State != migrate.WorkloadFailed || !strings.Contains(w.Message, "rolled back by itself") {
			t.Errorf("%s: %+v, want rolled back by itself", w.Workload, w)
		}
	}
	got := templatesOf(t, cs, ns)
	for _, id := range []string{"Deployment/web", "Deployment/worker", "StatefulSet/postgres"} {
		if got[id] != orig[id] {
			t.Errorf("%s was not rolled back to its original template", id)
		}
	}
	views(t, cs, ns, false, 2*time.Minute) // and they run as before
}

// brokenInjector registers an injector (kwok-faked, as the sandbox emulates them) whose agents
// address a port where nothing listens; its configuration's name sorts before the estates'.
func brokenInjector(t *testing.T, cs kubernetes.Interface, ns string, nsLabels map[string]string) {
	t.Helper()
	ctx := context.Background()
	labels := map[string]string{"app.kubernetes.io/name": "vault-agent-injector", "app.kubernetes.io/instance": "broken"}
	_, err := cs.AppsV1().Deployments(ns).Create(ctx, &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: "broken-injector", Labels: labels},
		Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: corev1.PodTemplateSpec{
			ObjectMeta: metav1.ObjectMeta{Labels: labels},
			Spec: corev1.PodSpec{Containers: []corev1.Container{{Name: "sidecar-injector", Image: "hashicorp/vault-k8s:1.7.2", Env: []corev1.EnvVar{
				{Name: "AGENT_INJECT_VAULT_ADDR", Value: "https://127.0.0.1:9"},
				{Name: "AGENT_INJECT_VAULT_AUTH_PATH", Value: "auth/kubernetes"},
				{Name: "AGENT_INJECT_VAULT_IMAGE", Value: "hashicorp/vault:1.21.1"},
			}}}},
		}},
	}, metav1.CreateOptions{})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := cs.CoreV1().Services(ns).Create(ctx, &corev1.Service{ObjectMeta: metav1.ObjectMeta{Name: "broken-injector"},
		Spec: corev1.ServiceSpec{Selector: labels, Ports: []corev1.ServicePort{{Name: "https", Port: 443, TargetPort: intstr.FromInt32(8080)}}}}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	none, ignore := admissionregistrationv1.SideEffectClassNone, admissionregistrationv1.Ignore
	name := "aaa-" + ns + "-injector-cfg"
	if _, err := cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Create(ctx, &admissionregistrationv1.MutatingWebhookConfiguration{
		ObjectMeta: metav1.ObjectMeta{Name: name},
		Webhooks: []admissionregistrationv1.MutatingWebhook{{
			Name:         "vault.hashicorp.com",
			ClientConfig: admissionregistrationv1.WebhookClientConfig{Service: &admissionregistrationv1.ServiceReference{Namespace: ns, Name: "broken-injector", Path: ptr("/mutate")}},
			Rules: []admissionregistrationv1.RuleWithOperations{{Operations: []admissionregistrationv1.OperationType{admissionregistrationv1.Create},
				Rule: admissionregistrationv1.Rule{APIGroups: []string{""}, APIVersions: []string{"v1"}, Resources: []string{"pods"}}}},
			NamespaceSelector: &metav1.LabelSelector{MatchLabels: nsLabels},
			SideEffects:       &none, FailurePolicy: &ignore, AdmissionReviewVersions: []string{"v1"}, TimeoutSeconds: ptr(int32(2)),
		}},
	}, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		cs.AdmissionregistrationV1().MutatingWebhookConfigurations().Delete(context.Background(), name, metav1.DeleteOptions{})
	})
}
