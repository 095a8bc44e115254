package migrate

import (
	"context"
	"fmt"
	"strings"
	"sync"
	"sync/atomic"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
	k8stesting "k8s.io/client-go/testing"
)

func TestJournalRoundTripAndOwned(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	at := time.Date(2026, 12, 1, 10, 0, 0, 0, time.UTC)
	js := JournalStore{Kube: cs, Namespace: "team-a", Now: func() time.Time { return at }}

	j, err := js.Load(ctx)
	if err != nil || len(j.Secrets)+len(j.Workloads) != 0 {
		t.Fatalf("empty journal = %+v, %v", j, err)
	}
	must := func(err error) {
		t.Helper()
		if err != nil {
			t.Fatal(err)
		}
	}
	must(js.PutSecret(ctx, "db", SecretRecord{State: SecretCopied, KVPath: "secret/team-a/db", KVVersion: 1, BackupVersion: 1, UID: "u1", Version: "7"}))
	must(js.PutWorkload(ctx, WorkloadID{"Deployment", "api"}, WorkloadRecord{State: WorkloadProved, ServiceAccount: "api", CreatedServiceAccount: true,
		Role: "team-a-deployment-api", Policy: "team-a-deployment-api", OriginalHash: TemplateHash(map[string]string{"a": "b"})}))
	must(js.PutWorkload(ctx, WorkloadID{"CronJob", "report"}, WorkloadRecord{State: WorkloadPatched, ServiceAccount: "reporter", Role: "r2", Policy: "p2"}))
	must(js.PutNamespace(ctx, NamespaceRecord{Labelled: true}))

	// A key some person mangled is reported, not trusted.
	cm, _ := cs.CoreV1().ConfigMaps("team-a").Get(ctx, JournalConfigMap, metav1.GetOptions{})
	cm.Data["secret.broken"] = "{not json"
	if _, err := cs.CoreV1().ConfigMaps("team-a").Update(ctx, cm, metav1.UpdateOptions{}); err != nil {
		t.Fatal(err)
	}

	j, err = js.Load(ctx)
	must(err)
	if r := j.Secrets["db"]; r.State != SecretCopied || r.KVVersion != 1 || !r.At.Equal(at) {
		t.Errorf("secret record = %+v", r)
	}
	if r := j.Workloads["Deployment/api"]; r.State != WorkloadProved || !strings.HasPrefix(r.OriginalHash, "sha256:") {
		t.Errorf("workload record = %+v", r)
	}
	if !j.Namespace.Labelled || len(j.Unreadable) != 1 || j.Unreadable[0] != "secret.broken" {
		t.Errorf("namespace %+v, unreadable %v", j.Namespace, j.Unreadable)
	}
	o := j.Owned()
	if strings.Join(o.ServiceAccounts, ",") != "api" || strings.Join(o.Roles, ",") != "r2,team-a-deployment-api" || strings.Join(o.KVPaths, ",") != "secret/team-a/db" {
		t.Errorf("owned = %+v: want only the created ServiceAccount, both roles, the KV path", o)
	}

	must(js.Forget(ctx, j))
	j, err = js.Load(ctx)
	must(err)
	if len(j.Secrets)+len(j.Workloads)+len(j.Unreadable) != 0 || j.Namespace.Labelled {
		t.Fatalf("journal after Forget = %+v", j)
	}
}

func TestTemplateHashFollowsContent(t *testing.T) {
	a := corev1.PodTemplateSpec{Spec: corev1.PodSpec{ServiceAccountName: "x"}}
	b := a
	b.Spec.ServiceAccountName = "y"
	if TemplateHash(a) == TemplateHash(b) || TemplateHash(a) != TemplateHash(a) {
		t.Fatal("TemplateHash must be stable and change with the template")
	}
}

// Concurrent writers through a grouped store: every record is stored when its put returns, and
// they share ConfigMap updates instead of one read-modify-write each.
func TestJournalGroupedWritesShareUpdates(t *testing.T) {
	ctx := context.Background()
	cs := fake.NewClientset(&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "team-a"}})
	var updates atomic.Int32 // writes of the ConfigMap, whatever the verb
	for _, verb := range []string{"create", "update", "patch"} {
		cs.PrependReactor(verb, "configmaps", func(k8stesting.Action) (bool, runtime.Object, error) {
			updates.Add(1)
			time.Sleep(5 * time.Millisecond) // an API server round trip, so writers queue behind it
			return false, nil, nil
		})
	}
	js := JournalStore{Kube: cs, Namespace: "team-a"}.grouped(ctx)
	const writers = 64
	var wg sync.WaitGroup
	errs := make(chan error, writers)
	for i := range writers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			name := fmt.Sprintf("s%02d", i)
			if err := js.PutSecret(ctx, name, SecretRecord{State: SecretCopied, KVPath: "secret/team-a/" + name, KVVersion: 1}); err != nil {
				errs <- err
				return
			}
			// Stored once put returns: a plain store reads it back.
			j, err := JournalStore{Kube: cs, Namespace: "team-a"}.Load(ctx)
			if err != nil {
				errs <- err
			} else if j.Secrets[name].KVPath != "secret/team-a/"+name {
				errs <- fmt.Errorf("record %s not stored when its put returned: %+v", name, j.Secrets[name])
			}
		}()
	}
	wg.Wait()
	close(errs)
	for err := range errs {
		t.Error(err)
	}
	j, err := JournalStore{Kube: cs, Namespace: "team-a"}.Load(ctx)
	if err != nil || len(j.Secrets) != writers {
		t.Fatalf("journal holds %d Secrets (want %d), %v", len(j.Secrets), writers, err)
	}
	if n := updates.Load(); n >= writers-1 {
		t.Errorf("%d ConfigMap updates for %d records: the writes were not grouped", n, writers)
	}
}
