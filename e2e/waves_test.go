package e2e

import (
	"context"
	"crypto/ecdsa"
	"crypto/elliptic"
	"crypto/rand"
	"crypto/x509"
	"crypto/x509/pkix"
	"encoding/json"
	"encoding/pem"
	"fmt"
	"math/big"
	"os"
	"strings"
	"testing"
	"time"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/waves"
)

// wavesValues are the values of the Secrets the wave test migrates; the scan searches for them.
var wavesValues = map[string]map[string][]byte{
	"wiki-db": {"password": []byte("wiki-pilot-pw-3Jq9xZ")},
	"api-key": {"token": []byte("staging-api-token-Lm27Qw")},
}

type migrateStatusDoc struct {
	OK    bool               `json:"ok"`
	Waves []waves.WaveStatus `json:"waves"`
	Next  string             `json:"next"`
}

type migrateWaveDoc struct {
	OK bool `json:"ok"`
	waves.RunResult
	Error string `json:"error"`
}

// Issue 12's "Done when" for the waves: a two-namespace plan of three waves (a pilot workload,
// the CI guard, staging) runs with `migrate next` three times; `migrate status` follows each
// run; a failing gate blocks the next wave with its evidence; after the CI guard wave the real
// API server denies an Opaque Secret in a labelled namespace and admits a TLS one.
func TestMigrationWaves(t *testing.T) {
	t.Parallel()
	const vns, pilot, staging = "wav-vault", "wav-pilot", "wav-staging"
	e := newMigrateEstate(t, vns)
	cs := kube(t)
	ctx := context.Background()
	e.appNamespace(t, cs, pilot)
	e.appNamespace(t, cs, staging)
	createObjects(t, cs, wavesObjects(pilot, staging))

	f, err := os.OpenFile(e.cfg, os.O_APPEND|os.O_WRONLY, 0)
	if err != nil {
		t.Fatal(err)
	}
	fmt.Fprintf(f, `migration:
  waves:
    - week: 1
      name: pilot
      workloads: [%[1]s/Deployment/wiki]
      gates: [injector-healthy]
    - week: 2
      name: ci-guard
      gates: [previous-wave-complete, check-passing, admission-policy]
    - week: 3
      name: staging
      namespaces: [%[2]s]
      gates: [previous-wave-complete, check-passing, admission-policy]
`, pilot, staging)
	f.Close()

	status := func(t *testing.T) migrateStatusDoc {
		t.Helper()
		r := vaultctl(t, "migrate", "status", "-c", e.cfg, "-o", "json")
		var doc migrateStatusDoc
		if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || r.Code != 0 || !doc.OK {
			t.Fatalf("migrate status: exit %d, %v\n%s", r.Code, err, r)
		}
		return doc
	}
	next := func(t *testing.T, args ...string) (migrateWaveDoc, cliResult) {
		t.Helper()
		r := vaultctl(t, append([]string{"migrate", "next", "-c", e.cfg, "-o", "json"}, args...)...)
		var doc migrateWaveDoc
		if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil {
			t.Fatalf("migrate next output is not one JSON document: %v\n%s", err, r)
		}
		return doc, r
	}
	gate := func(ws waves.WaveStatus, name string) waves.GateResult {
		for _, g := range ws.Gates {
			if g.Gate == name {
				return g
			}
		}
		t.Fatalf("wave %s has no gate %s: %+v", ws.Name, name, ws.Gates)
		return waves.GateResult{}
	}

	// Nothing has run: the pilot is next, and the injector's webhook has no caBundle yet (the
	// sandbox's injector pods never start, so nothing wrote it).
	st := status(t)
	if st.Next != "pilot" || len(st.Waves) != 3 {
		t.Fatalf("status before anything ran: next %q, %d waves, want pilot and 3", st.Next, len(st.Waves))
	}
	if s := st.Waves[0].States; len(s) != 1 || s[0].State != waves.NotStarted {
		t.Errorf("pilot's namespace before the run: %+v, want not started", s)
	}
	inj := gate(st.Waves[0], "injector-healthy")
	if inj.OK || !strings.Contains(inj.Evidence, "caBundle is empty") || !strings.Contains(inj.Evidence, "available") {
		t.Errorf("injector-healthy with an empty caBundle: %+v, want failing with the evidence", inj)
	}
	doc, r := next(t, "--yes")
	if r.Code != 1 || len(doc.Blocked) != 1 || doc.Blocked[0].Gate != "injector-healthy" || doc.Blocked[0].Fix == "" {
		t.Fatalf("migrate next with the injector unhealthy: exit %d, blocked %+v, want 1 and injector-healthy with a fix\n%s", r.Code, doc.Blocked, r)
	}

	// What the injector does when it starts (AGENT_INJECT_TLS_AUTO): write its CA.
	writeInjectorCABundle(t, cs, vns)
	if _, r := next(t, "--plan"); r.Code != 3 {
		t.Fatalf("migrate next --plan with the pilot to run: exit %d, want 3\n%s", r.Code, r)
	}
	doc, r = next(t, "--yes")
	if r.Code != 0 || doc.Wave != "pilot" || doc.After == nil || !doc.After.Complete {
		t.Fatalf("first migrate next: exit %d, wave %q, want pilot complete\n%s", r.Code, doc.Wave, r)
	}
	st = status(t)
	if st.Next != "ci-guard" || !st.Waves[0].Complete || st.Waves[0].Finished == nil {
		t.Fatalf("status after the pilot: next %q, pilot %+v", st.Next, st.Waves[0])
	}
	if s := st.Waves[0].States[0]; s.State != waves.Verified || s.Labelled {
		t.Errorf("pilot namespace after the pilot wave: %+v, want verified and not labelled yet", s)
	}
	if s := st.Waves[2].States[0]; s.State != waves.NotStarted {
		t.Errorf("staging after the pilot wave: %+v, want not started", s)
	}
	if g := gate(st.Waves[0], "injector-healthy"); !g.OK || !strings.Contains(g.Evidence, "caBundle valid") {
		t.Errorf("injector-healthy once the caBundle is written: %+v", g)
	}
	if g := gate(st.Waves[1], "admission-policy"); !g.Outcome {
		t.Errorf("admission-policy on the CI guard wave: %+v, want marked as what the wave establishes", g)
	}

	// A raw Secret added to the pilot's namespace fails check-passing, and the guard waits.
	leak := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "leak", Namespace: pilot}, StringData: map[string]string{"k": "not-a-real-secret"}}
	if _, err := cs.CoreV1().Secrets(pilot).Create(ctx, leak, metav1.CreateOptions{}); err != nil {
		t.Fatal(err)
	}
	doc, r = next(t, "--yes")
	if r.Code != 1 || doc.Wave != "ci-guard" || len(doc.Blocked) != 1 || doc.Blocked[0].Gate != "check-passing" ||
		!strings.Contains(doc.Blocked[0].Evidence, pilot+"/Secret/leak") {
		t.Fatalf("migrate next with a raw Secret in the pilot namespace: exit %d, blocked %+v, want check-passing naming %s/Secret/leak\n%s", r.Code, doc.Blocked, pilot, r)
	}
	if err := cs.CoreV1().Secrets(pilot).Delete(ctx, "leak", metav1.DeleteOptions{}); err != nil {
		t.Fatal(err)
	}

	// The CI guard wave: the policy with its binding, and the pilot's namespace labelled.
	doc, r = next(t, "--yes")
	if r.Code != 0 || doc.Wave != "ci-guard" || doc.After == nil || !doc.After.Complete {
		t.Fatalf("second migrate next: exit %d, wave %q, want ci-guard complete\n%s", r.Code, doc.Wave, r)
	}
	st = status(t)
	if st.Next != "staging" || !st.Waves[1].Complete || !st.Waves[0].States[0].Labelled {
		t.Fatalf("status after the CI guard: next %q, guard complete %t, pilot namespace %+v", st.Next, st.Waves[1].Complete, st.Waves[0].States[0])
	}
	// Running the complete guard wave again changes nothing on the real API server.
	r = vaultctl(t, "migrate", "wave", "ci-guard", "--yes", "-c", e.cfg, "-o", "json")
	var again migrateWaveDoc
	if err := json.Unmarshal([]byte(r.Stdout), &again); err != nil || r.Code != 0 || !again.AlreadyComplete {
		t.Fatalf("migrate wave ci-guard again: exit %d, %v\n%s", r.Code, err, r)
	}
	for _, s := range again.Steps {
		if s.Done != "" {
			t.Errorf("the second guard run changed %s: %s", s.What, s.Done)
		}
	}
	var denied error
	eventually(t, 30*time.Second, "the admission policy denying an Opaque Secret in "+pilot, func() error {
		_, err := cs.CoreV1().Secrets(pilot).Create(ctx, &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "new-raw"}, StringData: map[string]string{"k": "v"}}, metav1.CreateOptions{})
		if err == nil {
			cs.CoreV1().Secrets(pilot).Delete(ctx, "new-raw", metav1.DeleteOptions{})
			return fmt.Errorf("accepted")
		}
		denied = err
		return nil
	})
	if !apierrors.IsForbidden(denied) && !apierrors.IsInvalid(denied) {
		t.Errorf("an Opaque Secret in the labelled namespace: %v, want it denied", denied)
	}
	tls := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "site-tls"}, Type: corev1.SecretTypeTLS,
		Data: map[string][]byte{corev1.TLSCertKey: []byte("cert"), corev1.TLSPrivateKeyKey: []byte("key")}}
	if _, err := cs.CoreV1().Secrets(pilot).Create(ctx, tls, metav1.CreateOptions{}); err != nil {
		t.Errorf("a kubernetes.io/tls Secret in the labelled namespace: %v, want it admitted", err)
	}

	// Staging: migrated whole, and labelled since the guard is on.
	doc, r = next(t, "--yes")
	if r.Code != 0 || doc.Wave != "staging" || doc.After == nil || !doc.After.Complete {
		t.Fatalf("third migrate next: exit %d, wave %q, want staging complete\n%s", r.Code, doc.Wave, r)
	}
	st = status(t)
	if st.Next != "" {
		t.Errorf("status after the three runs: next %q, want every wave complete", st.Next)
	}
	if s := st.Waves[2].States[0]; s.State != waves.Verified || !s.Labelled {
		t.Errorf("staging after its wave: %+v, want verified and labelled", s)
	}
	if doc, r := next(t, "--yes"); r.Code != 0 || doc.Wave != "" {
		t.Errorf("migrate next with every wave complete: exit %d, wave %q, want 0 and nothing to run\n%s", r.Code, doc.Wave, r)
	}
	// The text form names the states and the gates' evidence.
	if r := vaultctl(t, "migrate", "status", "-c", e.cfg); r.Code != 0 || !strings.Contains(r.Stdout, "namespace "+staging+": verified, labelled") || !strings.Contains(r.Stdout, "Every wave is complete.") {
		t.Errorf("migrate status text:\n%s", r)
	}

	// State is observed, not kept: rolling staging back makes its wave incomplete again.
	if r := vaultctl(t, "migrate", "namespace", staging, "--rollback", "--yes", "-c", e.cfg); r.Code != 0 {
		t.Fatalf("rollback of staging: exit %d\n%s", r.Code, r)
	}
	st = status(t)
	if s := st.Waves[2].States[0]; st.Next != "staging" || s.State != waves.RolledBack || st.Waves[2].Complete {
		t.Errorf("status after rolling staging back: next %q, staging %+v complete %t; want staging rolled back and next", st.Next, s, st.Waves[2].Complete)
	}

	var values []string
	for _, data := range wavesValues {
		for _, v := range data {
			values = append(values, string(v))
		}
	}
	scanForSecrets(t, vns, values, externalVault(e.vc, e.auditDir), migratedNamespace(staging, "api-key"))
}

// wavesObjects: the pilot's namespace holds the pilot workload and its Secret; staging one
// workload reading a Secret through a volume.
func wavesObjects(pilot, staging string) []runtime.Object {
	secret := func(ns, name string) *corev1.Secret {
		return &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{userSecretLabel: "true"}},
			Type: corev1.SecretTypeOpaque, Data: wavesValues[name]}
	}
	deployment := func(ns, name string, c corev1.Container, vols ...corev1.Volume) *appsv1.Deployment {
		labels := map[string]string{"app": name}
		return &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns}, Spec: appsv1.DeploymentSpec{
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: corev1.PodSpec{Containers: []corev1.Container{c}, Volumes: vols}},
		}}
	}
	return []runtime.Object{
		secret(pilot, "wiki-db"),
		deployment(pilot, "wiki", corev1.Container{Name: "wiki", Image: "registry.example/wiki:1", Command: []string{"/wiki"},
			Env: []corev1.EnvVar{secretEnv("DB_PASSWORD", "wiki-db", "password")}}),
		secret(staging, "api-key"),
		deployment(staging, "api", corev1.Container{Name: "api", Image: "registry.example/api:1", Command: []string{"/api"},
			VolumeMounts: []corev1.VolumeMount{{Name: "key", MountPath: "/etc/api", ReadOnly: true}}},
			corev1.Volume{Name: "key", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: "api-key"}}}),
	}
}

// writeInjectorCABundle writes a CA certificate into the estate's injector webhook, as the
// injector does at start with AGENT_INJECT_TLS_AUTO.
func writeInjectorCABundle(t *testing.T, cs kubernetes.Interface, vns string) {
	t.Helper()
	ctx := context.Background()
	key, err := ecdsa.GenerateKey(elliptic.P256(), rand.Reader)
	if err != nil {
		t.Fatal(err)
	}
	tpl := &x509.Certificate{SerialNumber: big.NewInt(1), Subject: pkix.Name{CommonName: "Agent Inject CA"},
		NotBefore: time.Now().Add(-time.Hour), NotAfter: time.Now().Add(24 * time.Hour), IsCA: true, BasicConstraintsValid: true,
		KeyUsage: x509.KeyUsageCertSign}
	der, err := x509.CreateCertificate(rand.Reader, tpl, tpl, &key.PublicKey, key)
	if err != nil {
		t.Fatal(err)
	}
	ca := pem.EncodeToMemory(&pem.Block{Type: "CERTIFICATE", Bytes: der})
	api := cs.AdmissionregistrationV1().MutatingWebhookConfigurations()
	list, err := api.List(ctx, metav1.ListOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range list.Items {
		for i, wh := range c.Webhooks {
			if s := wh.ClientConfig.Service; s != nil && s.Namespace == vns {
				c.Webhooks[i].ClientConfig.CABundle = ca
				if _, err := api.Update(ctx, &c, metav1.UpdateOptions{}); err != nil {
					t.Fatal(err)
				}
				return
			}
		}
	}
	t.Fatalf("no MutatingWebhookConfiguration calls a Service in %s", vns)
}
