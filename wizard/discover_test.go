package wizard

import (
	"context"
	"encoding/json"
	"fmt"
	"net/http"
	"net/http/httptest"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"sync/atomic"
	"testing"
	"time"
)

func writeKubeconfig(t *testing.T, server string) string {
	t.Helper()
	path := filepath.Join(t.TempDir(), "kubeconfig")
	kc := fmt.Sprintf(`apiVersion: v1
kind: Config
clusters:
  - name: c
    cluster: {server: %q}
users:
  - name: u
    user: {token: t}
contexts:
  - name: zeta
    context: {cluster: c, user: u}
  - name: alpha
    context: {cluster: c, user: u}
current-context: zeta
`, server)
	if err := os.WriteFile(path, []byte(kc), 0o600); err != nil {
		t.Fatal(err)
	}
	return path
}

func metadataList(items ...map[string]any) map[string]any {
	list := make([]map[string]any, len(items))
	for i, m := range items {
		list[i] = map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadata", "metadata": m}
	}
	return map[string]any{"apiVersion": "meta.k8s.io/v1", "kind": "PartialObjectMetadataList", "metadata": map[string]any{}, "items": list}
}

// TestKubeListsNamespacesAndCountsSecretsFromMetadata runs the discovery against a fake API
// server, which also checks that only metadata is asked for: no Secret value is read.
func TestKubeListsNamespacesAndCountsSecretsFromMetadata(t *testing.T) {
	var secretPages atomic.Int32
	var forbidSecrets atomic.Bool
	srv := httptest.NewServer(http.HandlerFunc(func(w http.ResponseWriter, r *http.Request) {
		if forbidSecrets.Load() && r.URL.Path == "/api/v1/secrets" {
			http.Error(w, `{"kind":"Status","apiVersion":"v1","status":"Failure","reason":"Forbidden","code":403}`, http.StatusForbidden)
			return
		}
		if !strings.Contains(r.Header.Get("Accept"), "as=PartialObjectMetadataList") {
			http.Error(w, "only metadata may be listed", http.StatusBadRequest)
			return
		}
		w.Header().Set("Content-Type", "application/json")
		var body map[string]any
		switch r.URL.Path {
		case "/api/v1/namespaces":
			body = metadataList(map[string]any{"name": "shop"}, map[string]any{"name": "kube-system"}, map[string]any{"name": "empty"})
		case "/api/v1/secrets":
			secretPages.Add(1)
			if r.URL.Query().Get("continue") == "" {
				body = metadataList(map[string]any{"name": "a", "namespace": "shop"}, map[string]any{"name": "b", "namespace": "kube-system"})
				body["metadata"] = map[string]any{"continue": "page2"}
			} else {
				body = metadataList(map[string]any{"name": "c", "namespace": "shop"})
			}
		default:
			http.NotFound(w, r)
			return
		}
		_ = json.NewEncoder(w).Encode(body)
	}))
	defer srv.Close()

	k := Kube{Kubeconfig: writeKubeconfig(t, srv.URL), Timeout: 5 * time.Second}
	names, current, err := k.Contexts()
	if err != nil || !slices.Equal(names, []string{"alpha", "zeta"}) || current != "zeta" {
		t.Fatalf("Contexts() = %v, %q, %v", names, current, err)
	}
	ns, err := k.Namespaces(context.Background(), "alpha")
	if err != nil {
		t.Fatal(err)
	}
	want := []Namespace{{"empty", 0}, {"kube-system", 1}, {"shop", 2}}
	if !slices.Equal(ns, want) {
		t.Errorf("Namespaces() = %v, want %v", ns, want)
	}
	if secretPages.Load() != 2 {
		t.Errorf("Secrets were listed in %d pages, want 2", secretPages.Load())
	}

	// Not allowed to list Secrets: the namespaces still come, with unknown counts.
	forbidSecrets.Store(true)
	ns, err = k.Namespaces(context.Background(), "alpha")
	if err != nil || len(ns) != 3 || ns[2] != (Namespace{"shop", -1}) {
		t.Errorf("Namespaces() = %v, %v", ns, err)
	}
	if got := namespaceLabel(ns[2]); got != "shop" {
		t.Errorf("label = %q", got)
	}
}

func TestKubeUnreachableOrMissing(t *testing.T) {
	k := Kube{Kubeconfig: writeKubeconfig(t, "https://127.0.0.1:1"), Timeout: 2 * time.Second}
	if _, err := k.Namespaces(context.Background(), ""); err == nil {
		t.Error("an unreachable API server must be an error")
	}
	t.Setenv("KUBECONFIG", filepath.Join(t.TempDir(), "none"))
	t.Setenv("HOME", t.TempDir())
	t.Setenv("KUBERNETES_SERVICE_HOST", "")
	if _, err := (Kube{}).Namespaces(context.Background(), ""); err == nil || err.Error() != "no kubeconfig found" {
		t.Errorf("err = %v, want no kubeconfig found", err)
	}
	if names, _, _ := (Kube{}).Contexts(); len(names) != 0 {
		t.Errorf("contexts = %v, want none", names)
	}
}
