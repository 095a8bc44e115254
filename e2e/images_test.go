package e2e

import (
	"context"
	"encoding/json"
	"os"
	"path/filepath"
	"slices"
	"strings"
	"testing"

	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/lifecycle"
)

// TestImagesEqualWhatTheInstallRuns installs Vault in-cluster with every image overridden to a
// mirror (as an air-gapped install does) and compares `images -o json` with what the cluster
// runs: the server StatefulSet and its pods, the injector Deployment, and the agent image the
// injector hands to injected pods.
func TestImagesEqualWhatTheInstallRuns(t *testing.T) {
	t.Parallel()
	const ns = "vault-images"
	const (
		mirrorVault    = "registry.internal:5000/mirror/hashicorp/vault:1.21.1"
		mirrorInjector = "registry.internal:5000/mirror/hashicorp/vault-k8s:1.7.0"
		mirrorAgent    = "registry.internal:5000/mirror/hashicorp/vault:1.21.1-agent"
	)
	cs := kube(t)
	ctx := context.Background()
	claimPVs(t, cs, ns, inClusterClaims())
	t.Cleanup(func() { deleteNamespace(t, cs, ns) })
	cfg := filepath.Join(t.TempDir(), "vaultctl.yaml")
	writeInClusterConfig(t, cfg, ns, false)
	b, err := os.ReadFile(cfg)
	if err != nil {
		t.Fatal(err)
	}
	mirrored := strings.Replace(string(b), "\nvault:\n", "\nvault:\n  images:\n    vault: "+mirrorVault+"\n    injector: "+mirrorInjector+"\n    agent: "+mirrorAgent+"\n", 1)
	if err := os.WriteFile(cfg, []byte(mirrored), 0o644); err != nil {
		t.Fatal(err)
	}

	// images needs no cluster: it is what one runs before mirroring.
	r := vaultctl(t, "images", "-c", cfg, "-o", "json")
	var doc struct {
		OK     bool
		Images []lifecycle.Image
	}
	if err := json.Unmarshal([]byte(r.Stdout), &doc); err != nil || !doc.OK {
		t.Fatalf("images: %v\n%s", err, r)
	}
	listed := map[string][]string{}
	for _, im := range doc.Images {
		listed[im.Component] = append(listed[im.Component], im.Image)
		if !im.Overridden {
			t.Errorf("%s image %s is not reported overridden", im.Component, im.Image)
		}
	}
	want := map[string][]string{"server": {mirrorVault}, "injector": {mirrorInjector}, "agent": {mirrorAgent}}
	for c, w := range want {
		if !slices.Equal(listed[c], w) {
			t.Errorf("images lists %s = %v, want %v", c, listed[c], w)
		}
	}

	if res := vaultctl(t, "apply", "-c", cfg, "-o", "json"); !parseRun(t, res).OK {
		t.Fatalf("in-cluster apply with mirrored images:\n%s", res)
	}
	running := map[string][]string{}
	addImage := func(c, image string) {
		if !slices.Contains(running[c], image) {
			running[c] = append(running[c], image)
		}
	}
	sts, err := cs.AppsV1().StatefulSets(ns).Get(ctx, "vault", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range append(sts.Spec.Template.Spec.InitContainers, sts.Spec.Template.Spec.Containers...) {
		addImage("server", c.Image)
	}
	pods, err := cs.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: "app.kubernetes.io/name=vault,component=server"})
	if err != nil || len(pods.Items) != 3 {
		t.Fatalf("server pods: %d, %v", len(pods.Items), err)
	}
	for _, p := range pods.Items {
		for _, c := range p.Spec.Containers {
			addImage("server", c.Image)
		}
	}
	dep, err := cs.AppsV1().Deployments(ns).Get(ctx, "vault-agent-injector", metav1.GetOptions{})
	if err != nil {
		t.Fatal(err)
	}
	for _, c := range dep.Spec.Template.Spec.Containers {
		addImage("injector", c.Image)
		for _, e := range c.Env {
			if e.Name == "AGENT_INJECT_VAULT_IMAGE" {
				addImage("agent", e.Value)
			}
		}
	}
	for c := range want {
		if !slices.Equal(running[c], listed[c]) {
			t.Errorf("%s: the cluster runs %v, images listed %v", c, running[c], listed[c])
		}
	}
	if len(running) != len(listed) {
		t.Errorf("the cluster runs %v, images listed %v", running, listed)
	}

	text := vaultctl(t, "images", "-c", cfg)
	if text.Code != 0 || !strings.Contains(text.Stdout, "vault.images.injector (overridden; default hashicorp/vault-k8s:1.7.0)") {
		t.Errorf("text output:\n%s", text)
	}
}
