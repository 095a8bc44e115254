package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"crypto/rand"
	"encoding/base64"
	"encoding/binary"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"io"
	"io/fs"
	"net/url"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"
	"unicode/utf8"

	vaultapi "github.com/hashicorp/vault/api"
	coordinationv1 "k8s.io/api/coordination/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/fields"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/internal/awskms"
	"github.com/vaultctl/vaultctl/internal/sandbox"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

func keysOf(m map[string][]byte) []string {
	var out []string
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

func isForbidden(err error) bool {
	var re *vaultapi.ResponseError
	return errors.As(err, &re) && re.StatusCode == 403
}

// openCustody decrypts the custody Secret through the sandbox KMS, as an operator would.
func openCustody(t *testing.T, data map[string][]byte) ([]string, string) {
	t.Helper()
	for _, kv := range sb.Env() {
		// The KMS client's settings only, and not when already set (the fault suite sets them
		// once for its parallel tests): t.Setenv would refuse a parallel test.
		if k, v, _ := strings.Cut(kv, "="); strings.HasPrefix(k, "AWS_") && os.Getenv(k) != v {
			t.Setenv(k, v)
		}
	}
	c, err := awskms.New(context.Background(), sb.KMSRegion, sb.KMSEndpoint)
	if err != nil {
		t.Fatal(err)
	}
	keys, root, err := phases.OpenCustody(context.Background(), c, data)
	if err != nil {
		t.Fatalf("opening custody: %v", err)
	}
	return keys, root
}

// custodyRootKey is the custody Secret's data key for the KMS-encrypted initial root token.
const custodyRootKey = "pending-root-token.enc"

// watchRootToken follows ns's custody Secret from before an apply that initializes Vault, and
// returns a function that stops following and opens the root token the Secret held on the way.
// It is the one place the default configuration (keepRootToken: false) keeps the initial root
// token, until bootstrap revokes it: a watch sees every version, where polling could miss it.
func watchRootToken(t *testing.T, ns string) (rootToken func() string) {
	t.Helper()
	cs, err := kubernetes.NewForConfig(restConfig(t)) // no client timeout: the watch outlives 30 s
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	t.Cleanup(cancel) // a test that fails before asking still ends the watch
	sel := fields.OneTermEqualSelector("metadata.name", phases.CustodySecret).String()
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{FieldSelector: sel})
	if err != nil {
		t.Fatalf("listing the custody Secret: %v", err)
	}
	if len(list.Items) != 0 {
		t.Fatalf("the custody Secret %s/%s exists before the apply: the watch would not see Vault initialized", ns, phases.CustodySecret)
	}
	var sealed []byte
	var watchErr error
	done := make(chan struct{})
	go func() {
		defer close(done)
		rv := list.ResourceVersion
		for ctx.Err() == nil {
			w, err := cs.CoreV1().Secrets(ns).Watch(ctx, metav1.ListOptions{FieldSelector: sel, ResourceVersion: rv})
			if err != nil {
				if ctx.Err() == nil {
					watchErr = err
				}
				return
			}
			for ev := range w.ResultChan() {
				switch o := ev.Object.(type) {
				case *corev1.Secret:
					rv = o.ResourceVersion
					if b := o.Data[custodyRootKey]; len(b) > 0 && sealed == nil {
						sealed = b
					}
				case *metav1.Status:
					if ctx.Err() == nil { // a stopped watch ends with a Status too
						watchErr = fmt.Errorf("watch ended: %s", o.Message)
					}
					w.Stop()
					return
				}
			}
			// The server closed the watch (its timeout): resume where it stopped.
		}
	}()
	return func() string {
		t.Helper()
		cancel()
		<-done
		if watchErr != nil {
			t.Fatalf("watching the custody Secret: %v", watchErr)
		}
		if sealed == nil {
			t.Fatalf("the custody Secret %s/%s never held %s while it was watched", ns, phases.CustodySecret, custodyRootKey)
		}
		_, root := openCustody(t, map[string][]byte{custodyRootKey: sealed})
		if root == "" {
			t.Fatal("the root token envelope in custody opened to nothing")
		}
		return root
	}
}

// The places the scan reads, one name per kind, so the scan can say which it read and how often.
const (
	srcCLI         = "CLI output"
	srcConfigMap   = "ConfigMap"
	srcHelm        = "Helm release"
	srcSecret      = "Secret"
	srcEvent       = "Event"
	srcLease       = "Lease"
	srcWorkload    = "workload"
	srcLog         = "sandbox log"
	srcAuditFile   = "Vault audit log"
	srcAuditVolume = "Vault audit volume"
)

// haystack is one thing the scan searched: its kind, which one, and its bytes.
type haystack struct {
	source, name string
	text         []byte
}

// scanScope says where one estate's secrets could have gone besides the cluster-wide sources.
type scanScope struct {
	namespace  string   // vaultctl's namespace: its ConfigMaps, custody Secret, Lease, releases
	auditFiles []string // file audit devices of an external Vault; in-cluster ones are found on ns's audit volumes
	vaultLogs  []string // Vault server logs that must be among the logs read; default: ns's pod logs
	logGlob    string   // the logs to read
	// migrated is a namespace migrate ran on: its journal and lock must be read, and its own
	// Secrets (userSecrets), which hold the values by design until prune, are not searched.
	migrated    string
	userSecrets map[string]bool
}

// migratedNamespace scopes a scan to a migration of ns too; userSecrets are the Secrets the test
// created there (their values are the ones searched for everywhere else).
func migratedNamespace(ns string, userSecrets ...string) scanOpt {
	return func(s *scanScope) {
		s.migrated = ns
		s.userSecrets = map[string]bool{}
		for _, n := range userSecrets {
			s.userSecrets[ns+"/"+n] = true
		}
	}
}

// scanOpt adds to a scan's scope.
type scanOpt func(*scanScope)

// externalVault adds an external cluster's server logs and the two file audit devices
// writeExternalConfig puts in auditDir.
func externalVault(vc *sandbox.VaultCluster, auditDir string) scanOpt {
	return func(s *scanScope) {
		s.auditFiles = append(s.auditFiles, filepath.Join(auditDir, "audit.log"), filepath.Join(auditDir, "audit-backup.log"))
		for i := range vc.Addrs {
			// The sandbox names a cluster's node logs DIR/logs/NAME-vault-I.log; a change there
			// fails the scan ("not among the logs read"), it does not go unread.
			s.vaultLogs = append(s.vaultLogs, filepath.Join(sb.Dir, "logs", fmt.Sprintf("%s-vault-%d.log", vc.Name, i)))
		}
	}
}

// encoded is one form a secret could leak in, as the scan searches for it.
type encoded struct {
	form string
	text []byte
}

// encodings lists how a secret could leak: as is, hex, percent-encoded, and base64 (standard
// and URL-safe) inside a larger blob at each of the three offsets modulo 3 a blob can put it
// at; for base64 secrets (recovery keys) also their decoded bytes: raw, hex and base64 at each
// offset.
func encodings(s string) []encoded {
	b := []byte(s)
	out := []encoded{
		{"as is", b},
		{"hex", []byte(hex.EncodeToString(b))},
		{"hex (upper case)", []byte(strings.ToUpper(hex.EncodeToString(b)))},
		{"percent-encoded (query)", []byte(url.QueryEscape(s))},
		{"percent-encoded (path)", []byte(url.PathEscape(s))},
	}
	out = append(out, base64Shifts("base64", b)...)
	if raw, err := base64.StdEncoding.DecodeString(s); err == nil && len(raw) >= 16 {
		out = append(out, encoded{"raw bytes", raw}, encoded{"raw bytes, hex", []byte(hex.EncodeToString(raw))})
		out = append(out, base64Shifts("raw bytes, base64", raw)...)
	}
	return out
}

// base64Shifts returns what the base64 of any blob holding b must contain, for each offset of b
// in the blob modulo 3, in both alphabets. Base64 encodes 3-byte groups: with b at offset o, its
// first whole group starts (3-o)%3 bytes in, and the groups from there on encode to the same
// characters whatever surrounds them.
func base64Shifts(label string, b []byte) []encoded {
	var out []encoded
	for off := range 3 {
		core := b[(3-off)%3:]
		core = core[:len(core)/3*3]
		for _, a := range []struct {
			name string
			enc  *base64.Encoding
		}{{"standard", base64.StdEncoding}, {"URL-safe", base64.URLEncoding}} {
			out = append(out, encoded{fmt.Sprintf("%s (%s) at offset %d mod 3", label, a.name, off), []byte(a.enc.EncodeToString(core))})
		}
	}
	return out
}

// scanForSecrets searches every place vaultctl's run for ns could have put the secrets, in every
// form encodings lists. It fails when a place it must read could not be read or was not there,
// and for each secret found, naming where and in which form, never the secret.
func scanForSecrets(t *testing.T, ns string, secrets []string, opts ...scanOpt) {
	t.Helper()
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("refusing to scan for a short secret")
		}
	}
	sc := scanScope{namespace: ns, logGlob: filepath.Join(sb.Dir, "logs", "*.log")}
	for _, o := range opts {
		o(&sc)
	}
	hs, problems := collectHaystacks(context.Background(), kube(t), sc)
	problems = append(problems, checkSources(hs, sc)...)
	for _, p := range problems {
		t.Errorf("secret scan: %s", p)
	}
	t.Logf("secret scan read %s", summarize(hs))
	for _, l := range findLeaks(hs, secrets) {
		t.Errorf("secret #%d leaked into %s %s, %s", l.secret, l.source, l.name, l.form)
	}
}

// collectHaystacks reads every source: this run's CLI outputs; every ConfigMap, Secret (Helm
// releases decoded as Helm stores them: base64 of gzip of JSON), Event and Lease in the
// cluster; the Vault audit logs (the scope's files, and every file on ns's audit volumes, found
// from the PersistentVolumes bound to ns's audit-* claims); and the sandbox logs. Whatever
// cannot be read or decoded is a problem, never skipped.
func collectHaystacks(ctx context.Context, cs kubernetes.Interface, sc scanScope) (hs []haystack, problems []string) {
	add := func(source, name string, text []byte) {
		hs = append(hs, haystack{source, name, text})
	}
	fail := func(format string, a ...any) { problems = append(problems, fmt.Sprintf(format, a...)) }

	outputsMu.Lock()
	for i, o := range outputs {
		add(srcCLI, "#"+strconv.Itoa(i), []byte(o))
	}
	outputsMu.Unlock()

	// Objects are searched as their JSON (metadata, annotations, every field) and, separately,
	// their data values as stored, which JSON would escape or base64.
	object := func(obj any, values ...[]byte) []byte {
		j, err := json.Marshal(obj)
		if err != nil {
			fail("encoding %T: %v", obj, err)
		}
		return bytes.Join(append([][]byte{j}, values...), []byte("\n"))
	}
	cms, err := cs.CoreV1().ConfigMaps("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("listing ConfigMaps: %v", err)
	} else {
		for i := range cms.Items {
			cm := &cms.Items[i]
			var vals [][]byte
			for _, k := range sortedKeys(cm.Data) {
				vals = append(vals, []byte(cm.Data[k]))
			}
			for _, k := range sortedKeys(cm.BinaryData) {
				vals = append(vals, cm.BinaryData[k])
			}
			add(srcConfigMap, cm.Namespace+"/"+cm.Name, object(cm, vals...))
		}
	}
	secrets, err := cs.CoreV1().Secrets("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("listing Secrets: %v", err)
	} else {
		for i := range secrets.Items {
			s := &secrets.Items[i]
			name := s.Namespace + "/" + s.Name
			var vals [][]byte
			for _, k := range sortedKeys(s.Data) {
				vals = append(vals, s.Data[k])
			}
			// A migration scan leaves out the Secrets tests create as users (the values' source,
			// in the migrated namespace and in other tests' namespaces alike).
			if sc.userSecrets[name] || (sc.migrated != "" && s.Labels[userSecretLabel] == "true") {
				continue
			}
			// Helm's storage driver marks its releases owner=helm, and so does this scan.
			if s.Labels["owner"] != "helm" {
				add(srcSecret, name, object(s, vals...))
				continue
			}
			rel, err := decodeHelmRelease(s.Data["release"])
			if err != nil {
				fail("Helm release %s does not decode: %v", name, err)
				continue
			}
			add(srcHelm, name, object(s, rel))
		}
	}
	events, err := cs.CoreV1().Events("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("listing Events: %v", err)
	} else {
		for i := range events.Items {
			e := &events.Items[i]
			add(srcEvent, e.Namespace+"/"+e.Name, object(e))
		}
	}
	// Workload specs: migrate rewrites pod templates, and a value must never be inlined there.
	workloads := []struct {
		kind string
		list func() (any, error)
	}{
		{"Deployment", func() (any, error) { return cs.AppsV1().Deployments("").List(ctx, metav1.ListOptions{}) }},
		{"StatefulSet", func() (any, error) { return cs.AppsV1().StatefulSets("").List(ctx, metav1.ListOptions{}) }},
		{"DaemonSet", func() (any, error) { return cs.AppsV1().DaemonSets("").List(ctx, metav1.ListOptions{}) }},
		{"Job", func() (any, error) { return cs.BatchV1().Jobs("").List(ctx, metav1.ListOptions{}) }},
		{"CronJob", func() (any, error) { return cs.BatchV1().CronJobs("").List(ctx, metav1.ListOptions{}) }},
		{"Pod", func() (any, error) { return cs.CoreV1().Pods("").List(ctx, metav1.ListOptions{}) }},
	}
	for _, w := range workloads {
		list, err := w.list()
		if err != nil {
			fail("listing %ss: %v", w.kind, err)
			continue
		}
		j, err := json.Marshal(list)
		if err != nil {
			fail("encoding %ss: %v", w.kind, err)
			continue
		}
		var items struct {
			Items []struct {
				Metadata struct{ Namespace, Name string } `json:"metadata"`
			} `json:"items"`
		}
		_ = json.Unmarshal(j, &items)
		for _, it := range items.Items {
			if sc.migrated != "" && it.Metadata.Namespace == sc.migrated {
				// Counted per namespace so checkSources can insist the migrated ones were read.
				add(srcWorkload, sc.migrated+"/"+w.kind+"/"+it.Metadata.Name, nil)
			}
		}
		add(srcWorkload, w.kind+"s", j)
	}
	leases, err := cs.CoordinationV1().Leases("").List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("listing Leases: %v", err)
	} else {
		for i := range leases.Items {
			l := &leases.Items[i]
			add(srcLease, l.Namespace+"/"+l.Name, object(l))
		}
	}

	readFile := func(source, path string) {
		b, err := os.ReadFile(path)
		switch {
		case err != nil:
			fail("%s %s cannot be read: %v", source, path, err)
		case len(b) == 0 && (source == srcAuditFile || source == srcAuditVolume):
			fail("%s %s is empty: the device logged nothing, so searching it proves nothing", source, path)
		default:
			add(source, path, b)
		}
	}
	for _, f := range sc.auditFiles {
		readFile(srcAuditFile, f)
	}
	pvs, err := cs.CoreV1().PersistentVolumes().List(ctx, metav1.ListOptions{})
	if err != nil {
		fail("listing PersistentVolumes: %v", err)
	} else {
		for _, pv := range pvs.Items {
			ref := pv.Spec.ClaimRef
			if ref == nil || ref.Namespace != sc.namespace || !strings.HasPrefix(ref.Name, "audit-") {
				continue
			}
			var dir string
			switch {
			case pv.Spec.HostPath != nil:
				dir = pv.Spec.HostPath.Path
			case pv.Spec.Local != nil:
				dir = pv.Spec.Local.Path
			default:
				fail("PersistentVolume %s (claim %s/%s) is neither hostPath nor local: its audit logs cannot be read", pv.Name, ref.Namespace, ref.Name)
				continue
			}
			err := filepath.WalkDir(dir, func(p string, d fs.DirEntry, err error) error {
				if err != nil {
					return err
				}
				if d.Type().IsRegular() {
					readFile(srcAuditVolume, p)
				}
				return nil
			})
			if err != nil {
				fail("audit volume %s (claim %s/%s) cannot be read: %v", pv.Name, ref.Namespace, ref.Name, err)
			}
		}
	}

	logs, err := filepath.Glob(sc.logGlob)
	if err != nil {
		fail("listing logs %s: %v", sc.logGlob, err)
	}
	for _, f := range logs {
		readFile(srcLog, f)
	}
	return hs, problems
}

// checkSources fails a scan that did not read what it must have: this test's CLI outputs,
// vaultctl's own objects in ns, its Vault's server logs and at least two audit logs (validation
// insists on two devices). A scan that searched nothing would otherwise pass.
func checkSources(hs []haystack, sc scanScope) []string {
	var problems []string
	count := map[string]int{}
	read := map[string]bool{}
	inNS := map[string]int{}
	for _, h := range hs {
		count[h.source]++
		read[h.source+" "+h.name] = len(h.text) > 0
		if strings.HasPrefix(h.name, sc.namespace+"/") {
			inNS[h.source]++
		}
	}
	ns := sc.namespace
	if count[srcCLI] == 0 {
		problems = append(problems, "no CLI output recorded")
	}
	for _, want := range []struct{ source, name string }{
		{srcConfigMap, ns + "/" + phases.CheckpointConfigMap},
		{srcConfigMap, ns + "/" + phases.OwnershipConfigMap},
		{srcSecret, ns + "/" + phases.CustodySecret},
		{srcLease, ns + "/vaultctl-apply"},
	} {
		if _, ok := read[want.source+" "+want.name]; !ok {
			problems = append(problems, fmt.Sprintf("%s %s was not among those read", want.source, want.name))
		}
	}
	for _, src := range []string{srcHelm, srcEvent} {
		if inNS[src] == 0 {
			problems = append(problems, fmt.Sprintf("no %s in namespace %s was read", src, ns))
		}
	}
	vaultLogs := sc.vaultLogs
	if len(vaultLogs) == 0 {
		vaultLogs, _ = filepath.Glob(sandbox.PodLog(sb.Dir, ns, "vault-*"))
		if len(vaultLogs) == 0 {
			problems = append(problems, "no Vault server log for namespace "+ns)
		}
	}
	for _, f := range vaultLogs {
		if !read[srcLog+" "+f] {
			problems = append(problems, fmt.Sprintf("Vault server log %s is empty or not among the logs read (%s)", f, sc.logGlob))
		}
	}
	if m := sc.migrated; m != "" {
		for _, want := range []struct{ source, name string }{
			{srcConfigMap, m + "/" + migrate.JournalConfigMap},
			{srcLease, ns + "/" + action.MigrateLease(m)},
		} {
			if _, ok := read[want.source+" "+want.name]; !ok {
				problems = append(problems, fmt.Sprintf("%s %s was not among those read", want.source, want.name))
			}
		}
		migratedWorkloads := 0
		for _, h := range hs {
			if h.source == srcWorkload && strings.HasPrefix(h.name, m+"/") {
				migratedWorkloads++
			}
		}
		if migratedWorkloads == 0 {
			problems = append(problems, "no workload of the migrated namespace "+m+" was read")
		}
	}
	if n := count[srcAuditFile] + count[srcAuditVolume]; n < 2 {
		problems = append(problems, fmt.Sprintf("%d Vault audit logs read, want at least 2 (two file devices)", n))
	}
	return problems
}

// summarize says how many of each source a scan read, and how much: no content.
func summarize(hs []haystack) string {
	count, size := map[string]int{}, 0
	for _, h := range hs {
		count[h.source]++
		size += len(h.text)
	}
	var parts []string
	for _, src := range []string{srcCLI, srcConfigMap, srcHelm, srcSecret, srcEvent, srcLease, srcLog, srcAuditFile, srcAuditVolume} {
		parts = append(parts, fmt.Sprintf("%d %s", count[src], src))
	}
	return fmt.Sprintf("%s (%.1f MB)", strings.Join(parts, ", "), float64(size)/1e6)
}

// leak is one secret found: which (its index), where, in which form.
type leak struct {
	secret       int
	source, name string
	form         string
}

// findLeaks searches every haystack for every form of every secret in one pass per haystack:
// each 8-byte window is looked up among the forms' first 8 bytes, so the cost does not grow
// with the number of secrets and forms (hundreds in the positive control, over megabytes).
func findLeaks(hs []haystack, secrets []string) []leak {
	type needle struct {
		secret int
		form   string
		text   []byte
	}
	var needles []needle
	index := map[uint64][]int{}
	for i, s := range secrets {
		for _, e := range encodings(s) {
			if len(e.text) < 8 {
				panic("secret scan: a form shorter than 8 bytes; scanForSecrets refuses short secrets")
			}
			index[binary.LittleEndian.Uint64(e.text)] = append(index[binary.LittleEndian.Uint64(e.text)], len(needles))
			needles = append(needles, needle{i, e.form, e.text})
		}
	}
	var out []leak
	for _, h := range hs {
		found := map[int]bool{}
		for i := 0; i+8 <= len(h.text); i++ {
			for _, j := range index[binary.LittleEndian.Uint64(h.text[i:])] {
				if !found[j] && bytes.HasPrefix(h.text[i:], needles[j].text) {
					found[j] = true
				}
			}
		}
		for j := range found {
			out = append(out, leak{needles[j].secret, h.source, h.name, needles[j].form})
		}
	}
	sort.Slice(out, func(a, b int) bool {
		x, y := out[a], out[b]
		if x.secret != y.secret {
			return x.secret < y.secret
		}
		return x.source+x.name+x.form < y.source+y.name+y.form
	})
	return out
}

// decodeHelmRelease undoes Helm's Secret storage: base64, then gzip (Helm 3 always compresses;
// it reads uncompressed JSON too), then JSON, which must be valid.
func decodeHelmRelease(data []byte) ([]byte, error) {
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return nil, fmt.Errorf("base64: %w", err)
	}
	if bytes.HasPrefix(raw, []byte{0x1f, 0x8b}) {
		zr, err := gzip.NewReader(bytes.NewReader(raw))
		if err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
		if raw, err = io.ReadAll(zr); err != nil {
			return nil, fmt.Errorf("gzip: %w", err)
		}
	}
	if !json.Valid(raw) {
		return nil, errors.New("not JSON")
	}
	return raw, nil
}

func sortedKeys[V any](m map[string]V) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}

// TestSecretScanFindsEverySecretPlanted is the scan's positive control: one fresh secret per
// source and per form, planted where and how a leak would put it, and the scan must report each
// one in that source and form. Then the scan's own failures: what it cannot read or decode,
// and sources it did not find, must fail it.
func TestSecretScanFindsEverySecretPlanted(t *testing.T) {
	const ns = "scan-control"
	cs := kube(t)
	ctx := context.Background()
	ensureNamespace(t, cs, ns)
	claimPVs(t, cs, ns, []string{"audit-vault-0"})
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })

	plants := plantTable()
	// The table plants exactly the forms the scan searches: a form added to the scan without a
	// plant (or the other way round) fails here.
	var searched, planted []string
	for _, e := range encodings(plantSecret(t)) {
		searched = append(searched, e.form)
	}
	for form := range plants {
		planted = append(planted, form)
	}
	sort.Strings(searched)
	sort.Strings(planted)
	if strings.Join(searched, "\n") != strings.Join(planted, "\n") {
		t.Fatalf("the forms searched and planted differ:\nsearched:\n%s\nplanted:\n%s", strings.Join(searched, "\n"), strings.Join(planted, "\n"))
	}

	type plant struct {
		secret       int
		source, form string
	}
	var secrets []string
	var want []plant
	// each returns, for every form, a fresh secret's planted text; text-only sources (JSON
	// strings: Helm values, Event messages, Lease holders) cannot hold raw bytes, so a leak of
	// those bytes there would be one of the encoded forms, and raw bytes are not planted there.
	each := func(source string, textOnly bool, plantIt func(i int, text []byte)) {
		for i, form := range planted {
			if textOnly && form == "raw bytes" {
				continue
			}
			s := plantSecret(t)
			want = append(want, plant{len(secrets), source, form})
			secrets = append(secrets, s)
			plantIt(i, plants[form](s))
		}
	}
	key := func(i int) string { return "planted-" + strconv.Itoa(i) }

	each(srcCLI, false, func(_ int, text []byte) { recordOutput("vaultctl apply\n" + string(text) + "\n") })

	cm := &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: phases.CheckpointConfigMap}, Data: map[string]string{}, BinaryData: map[string][]byte{}}
	each(srcConfigMap, false, func(i int, text []byte) {
		if utf8.Valid(text) {
			cm.Data[key(i)] = string(text)
		} else {
			cm.BinaryData[key(i)] = text
		}
	})
	sec := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: phases.CustodySecret}, Data: map[string][]byte{}}
	each(srcSecret, false, func(i int, text []byte) { sec.Data[key(i)] = text })
	values := map[string]string{}
	each(srcHelm, true, func(i int, text []byte) { values[key(i)] = string(text) })
	var events []*corev1.Event
	each(srcEvent, true, func(i int, text []byte) {
		events = append(events, &corev1.Event{
			ObjectMeta:     metav1.ObjectMeta{Name: "scan-control." + key(i)},
			InvolvedObject: corev1.ObjectReference{Kind: "ConfigMap", Namespace: ns, Name: phases.CheckpointConfigMap, APIVersion: "v1"},
			Reason:         "Planted", Message: string(text), Type: corev1.EventTypeNormal,
			Source: corev1.EventSource{Component: "e2e"}, FirstTimestamp: metav1.Now(), LastTimestamp: metav1.Now(), Count: 1,
		})
	})
	var leases []*coordinationv1.Lease
	leases = append(leases, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: "vaultctl-apply"}})
	each(srcLease, true, func(i int, text []byte) {
		holder := string(text)
		leases = append(leases, &coordinationv1.Lease{ObjectMeta: metav1.ObjectMeta{Name: key(i)}, Spec: coordinationv1.LeaseSpec{HolderIdentity: &holder}})
	})
	logDir, auditDir := t.TempDir(), t.TempDir()
	var logText, auditText, volumeText []byte
	each(srcLog, false, func(_ int, text []byte) { logText = append(append(logText, text...), '\n') })
	each(srcAuditFile, false, func(_ int, text []byte) { auditText = append(append(auditText, text...), '\n') })
	each(srcAuditVolume, false, func(_ int, text []byte) { volumeText = append(append(volumeText, text...), '\n') })
	// A fresh secret planted nowhere: the scan must not find it.
	unplanted := len(secrets)
	secrets = append(secrets, plantSecret(t))

	mustCreate(t, "ConfigMap", func() error { _, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, cm, metav1.CreateOptions{}); return err })
	mustCreate(t, "ConfigMap", func() error {
		_, err := cs.CoreV1().ConfigMaps(ns).Create(ctx, &corev1.ConfigMap{ObjectMeta: metav1.ObjectMeta{Name: phases.OwnershipConfigMap}}, metav1.CreateOptions{})
		return err
	})
	mustCreate(t, "Secret", func() error { _, err := cs.CoreV1().Secrets(ns).Create(ctx, sec, metav1.CreateOptions{}); return err })
	mustCreate(t, "Helm release", func() error {
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, helmReleaseSecret(t, "control", helmRelease(t, ns, values)), metav1.CreateOptions{})
		return err
	})
	for _, e := range events {
		mustCreate(t, "Event", func() error { _, err := cs.CoreV1().Events(ns).Create(ctx, e, metav1.CreateOptions{}); return err })
	}
	for _, l := range leases {
		mustCreate(t, "Lease", func() error {
			_, err := cs.CoordinationV1().Leases(ns).Create(ctx, l, metav1.CreateOptions{})
			return err
		})
	}
	vaultLog := filepath.Join(logDir, "vault-0.log")
	auditLog, auditBackup := filepath.Join(auditDir, "audit.log"), filepath.Join(auditDir, "audit-backup.log")
	for path, text := range map[string][]byte{
		vaultLog: logText, auditLog: auditText, auditBackup: []byte(`{"type":"request"}` + "\n"),
		filepath.Join(sb.Dir, "e2e-pv", ns, "audit-vault-0", "audit.log"): volumeText,
	} {
		if err := os.WriteFile(path, text, 0o600); err != nil {
			t.Fatal(err)
		}
	}

	sc := scanScope{namespace: ns, auditFiles: []string{auditLog, auditBackup}, vaultLogs: []string{vaultLog}, logGlob: filepath.Join(logDir, "*.log")}
	hs, problems := collectHaystacks(ctx, cs, sc)
	problems = append(problems, checkSources(hs, sc)...)
	for _, p := range problems {
		t.Errorf("the control scan should read everything: %s", p)
	}
	t.Logf("the control scan read %s", summarize(hs))
	found := map[plant]bool{}
	for _, l := range findLeaks(hs, secrets) {
		if l.secret == unplanted {
			t.Errorf("the scan found a secret planted nowhere, in %s %s (%s)", l.source, l.name, l.form)
		}
		found[plant{l.secret, l.source, l.form}] = true
	}
	missed, sources := 0, map[string]bool{}
	for _, p := range want {
		sources[p.source] = true
		if !found[p] {
			missed++
			t.Errorf("the scan missed a secret planted in a %s as %s", p.source, p.form)
		}
	}
	t.Logf("%d secrets planted (%d sources, %d forms), %d found", len(want), len(sources), len(planted), len(want)-missed)

	t.Run("what cannot be read or decoded fails the scan", func(t *testing.T) {
		broken := map[string][]byte{
			"sh.helm.release.v1.notbase64.v1": []byte("%%% not base64"),
			"sh.helm.release.v1.badgzip.v1":   []byte(base64.StdEncoding.EncodeToString([]byte("\x1f\x8b\x08 truncated"))),
			"sh.helm.release.v1.notjson.v1":   []byte(base64.StdEncoding.EncodeToString(gzipped(t, []byte("not json")))),
		}
		for name, rel := range broken {
			s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Labels: map[string]string{"owner": "helm"}}, Type: "helm.sh/release.v1", Data: map[string][]byte{"release": rel}}
			mustCreate(t, "Secret", func() error { _, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{}); return err })
			// Deleted before the next test: every later scan reads all Secrets of the cluster.
			defer func() {
				if err := cs.CoreV1().Secrets(ns).Delete(ctx, name, metav1.DeleteOptions{}); err != nil {
					t.Errorf("deleting %s: %v", name, err)
				}
			}()
		}
		badLogs := t.TempDir()
		if err := os.Mkdir(filepath.Join(badLogs, "unreadable.log"), 0o700); err != nil { // reading a directory fails, even as root
			t.Fatal(err)
		}
		empty := filepath.Join(badLogs, "empty-audit.log")
		if err := os.WriteFile(empty, nil, 0o600); err != nil {
			t.Fatal(err)
		}
		missing := filepath.Join(badLogs, "missing-audit.log")
		_, problems := collectHaystacks(ctx, cs, scanScope{namespace: ns, auditFiles: []string{empty, missing}, logGlob: filepath.Join(badLogs, "*.log")})
		for name := range broken {
			mustReport(t, problems, "Helm release "+ns+"/"+name+" does not decode")
		}
		mustReport(t, problems, "sandbox log "+filepath.Join(badLogs, "unreadable.log")+" cannot be read")
		mustReport(t, problems, "Vault audit log "+missing+" cannot be read")
		mustReport(t, problems, "Vault audit log "+empty+" is empty")

		rc := restConfig(t)
		rc.Impersonate.UserName = "e2e-scan-nobody" // no RBAC at all: every list is forbidden
		nobody, err := kubernetes.NewForConfig(rc)
		if err != nil {
			t.Fatal(err)
		}
		_, problems = collectHaystacks(ctx, nobody, scanScope{namespace: ns, logGlob: sc.logGlob})
		for _, kind := range []string{"ConfigMaps", "Secrets", "Events", "Leases", "PersistentVolumes"} {
			mustReport(t, problems, "listing "+kind+": ")
		}
	})

	t.Run("a scan that did not find its sources fails", func(t *testing.T) {
		const absent = "scan-control-absent" // no such namespace: nothing of vaultctl's to read
		sc := scanScope{namespace: absent, logGlob: filepath.Join(t.TempDir(), "*.log")}
		hs, problems := collectHaystacks(ctx, cs, sc)
		if len(problems) != 0 {
			t.Fatalf("reading an empty scope: %v", problems)
		}
		problems = checkSources(hs, sc)
		for _, p := range []string{
			"ConfigMap " + absent + "/" + phases.CheckpointConfigMap, "ConfigMap " + absent + "/" + phases.OwnershipConfigMap,
			"Secret " + absent + "/" + phases.CustodySecret, "Lease " + absent + "/vaultctl-apply",
			"no Helm release in namespace " + absent, "no Event in namespace " + absent,
			"no Vault server log", "0 Vault audit logs read",
		} {
			mustReport(t, problems, p)
		}
	})
}

// mustReport fails unless one of problems contains want.
func mustReport(t *testing.T, problems []string, want string) {
	t.Helper()
	for _, p := range problems {
		if strings.Contains(p, want) {
			return
		}
	}
	t.Errorf("the scan did not report %q; it reported:\n%s", want, strings.Join(problems, "\n"))
}

// plantSecret returns a fresh secret shaped like a recovery key (base64 of 32 random bytes)
// with both '+' and '/' in it, so its URL-safe and percent-encoded forms differ from the others.
func plantSecret(t *testing.T) string {
	t.Helper()
	for {
		b := make([]byte, 32)
		if _, err := rand.Read(b); err != nil {
			t.Fatal(err)
		}
		if s := base64.StdEncoding.EncodeToString(b); strings.Contains(s, "+") && strings.Contains(s, "/") {
			return s
		}
	}
}

// plantTable says, for each form the scan searches, how a leak would write a secret: inside
// other text or bytes, the way a log line, a URL or an encoded blob would carry it. It is built
// from the encoders alone, never from what the scan searches for.
func plantTable() map[string]func(s string) []byte {
	noise := func(n int) []byte {
		b := make([]byte, n)
		rand.Read(b)
		return b
	}
	raw := func(s string) []byte {
		b, err := base64.StdEncoding.DecodeString(s)
		if err != nil {
			panic(err)
		}
		return b
	}
	cat := func(parts ...[]byte) []byte { return bytes.Join(parts, nil) }
	m := map[string]func(string) []byte{
		"as is":                   func(s string) []byte { return []byte(`level=info msg="unsealed" token=` + s + " ok") },
		"hex":                     func(s string) []byte { return []byte(hex.EncodeToString(cat(noise(5), []byte(s), noise(3)))) },
		"hex (upper case)":        func(s string) []byte { return []byte(strings.ToUpper(hex.EncodeToString(cat(noise(4), []byte(s))))) },
		"percent-encoded (query)": func(s string) []byte { return []byte("GET /v1/sys/x?key=" + url.QueryEscape(s) + "&x=1") },
		"percent-encoded (path)":  func(s string) []byte { return []byte("/v1/secret/" + url.PathEscape(s) + "/x") },
		"raw bytes":               func(s string) []byte { return cat(noise(5), raw(s), noise(7)) },
		"raw bytes, hex":          func(s string) []byte { return []byte(hex.EncodeToString(cat(noise(3), raw(s), noise(2)))) },
	}
	for off := range 3 {
		for _, a := range []struct {
			name string
			enc  *base64.Encoding
		}{{"standard", base64.StdEncoding}, {"URL-safe", base64.URLEncoding}} {
			// 3+off bytes before the secret put it at offset off modulo 3 in the encoded blob.
			m[fmt.Sprintf("base64 (%s) at offset %d mod 3", a.name, off)] = func(s string) []byte {
				return []byte(a.enc.EncodeToString(cat(noise(3+off), []byte(s), noise(4))))
			}
			m[fmt.Sprintf("raw bytes, base64 (%s) at offset %d mod 3", a.name, off)] = func(s string) []byte {
				return []byte(a.enc.EncodeToString(cat(noise(3+off), raw(s), noise(4))))
			}
		}
	}
	return m
}

// helmRelease is a minimal Helm release document with values as its user-supplied config.
func helmRelease(t *testing.T, ns string, values map[string]string) []byte {
	t.Helper()
	b, err := json.Marshal(map[string]any{"name": "control", "namespace": ns, "version": 1, "config": values,
		"info": map[string]any{"status": "deployed"}, "manifest": "---\n"})
	if err != nil {
		t.Fatal(err)
	}
	return b
}

// helmReleaseSecret stores a release the way Helm's Secret driver does: base64 of gzip, in a
// helm.sh/release.v1 Secret labelled owner=helm.
func helmReleaseSecret(t *testing.T, name string, release []byte) *corev1.Secret {
	return &corev1.Secret{
		ObjectMeta: metav1.ObjectMeta{Name: "sh.helm.release.v1." + name + ".v1",
			Labels: map[string]string{"owner": "helm", "name": name, "status": "deployed", "version": "1"}},
		Type: "helm.sh/release.v1",
		Data: map[string][]byte{"release": []byte(base64.StdEncoding.EncodeToString(gzipped(t, release)))},
	}
}

func gzipped(t *testing.T, b []byte) []byte {
	t.Helper()
	var buf bytes.Buffer
	zw := gzip.NewWriter(&buf)
	if _, err := zw.Write(b); err != nil {
		t.Fatal(err)
	}
	if err := zw.Close(); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}
