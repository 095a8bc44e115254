package kube

import (
	"os"
	"path/filepath"
	"strings"
	"testing"

	"k8s.io/client-go/tools/clientcmd"
)

func TestMissingKubeconfigNamesTheFileAndWhereItsNameCameFrom(t *testing.T) {
	dir := t.TempDir()
	missing := filepath.Join(dir, "nope", "config")
	good := filepath.Join(dir, "config")
	if err := os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	for _, c := range []struct {
		name, env, explicit string
		want                []string
		fix                 string
	}{
		{name: "KUBECONFIG", env: missing,
			want: []string{"kubeconfig " + missing + " does not exist", "KUBECONFIG"}, fix: "point KUBECONFIG at an existing kubeconfig"},
		{name: "every file in KUBECONFIG", env: missing + string(os.PathListSeparator) + missing + "2",
			want: []string{"named by KUBECONFIG", missing + ", " + missing + "2"}, fix: "point KUBECONFIG at an existing kubeconfig"},
		{name: "flag or config", env: good, explicit: missing,
			want: []string{"kubeconfig " + missing + " does not exist", "--kubeconfig or cluster.kubeconfig"}, fix: "point --kubeconfig (or cluster.kubeconfig"},
	} {
		t.Run(c.name, func(t *testing.T) {
			t.Setenv("KUBECONFIG", c.env)
			_, err := Connect(c.explicit, "")
			if err == nil {
				t.Fatal("connected without a kubeconfig")
			}
			for _, w := range c.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q: %v", w, err)
				}
			}
			if strings.Contains(err.Error(), "KUBERNETES_MASTER") {
				t.Errorf("client-go's hint leaked: %v", err)
			}
			if h := Hint(err, "generic"); !strings.Contains(h, c.fix) {
				t.Errorf("fix: %s", h)
			}
		})
	}
}

func TestAMissingFileAmongOthersInKUBECONFIGIsSkippedAsKubectlDoes(t *testing.T) {
	dir := t.TempDir()
	good := filepath.Join(dir, "config")
	if err := os.WriteFile(good, []byte(`apiVersion: v1
kind: Config
clusters: [{name: c, cluster: {server: "https://127.0.0.1:1"}}]
users: [{name: u, user: {token: x}}]
contexts: [{name: x, context: {cluster: c, user: u}}]
current-context: x
`), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", filepath.Join(dir, "missing")+string(os.PathListSeparator)+good)
	c, err := Connect("", "")
	if err != nil {
		t.Fatal(err)
	}
	if c.Host != "https://127.0.0.1:1" || c.Context != "x" {
		t.Fatalf("host %s, context %s", c.Host, c.Context)
	}
}

func TestABrokenKubeconfigIsNotCalledMissing(t *testing.T) {
	bad := filepath.Join(t.TempDir(), "config")
	if err := os.WriteFile(bad, []byte("apiVersion: v1\nkind: Config\ncurrent-context: nowhere\n"), 0o600); err != nil {
		t.Fatal(err)
	}
	t.Setenv("KUBECONFIG", bad)
	_, err := Connect("", "")
	if err == nil || strings.Contains(err.Error(), "does not exist") {
		t.Fatalf("want client-go's own complaint, got %v", err)
	}
	if h := Hint(err, "generic"); h != "generic" {
		t.Fatalf("hint %q", h)
	}
}

func TestNoDefaultKubeconfigSaysNothingNamedOne(t *testing.T) {
	t.Setenv("KUBECONFIG", "")
	home := filepath.Join(t.TempDir(), ".kube", "config")
	nf := missing(&clientcmd.ClientConfigLoadingRules{Precedence: []string{home}})
	if nf == nil || nf.Error() != "no kubeconfig: KUBECONFIG is unset and "+home+" does not exist" ||
		!strings.Contains(nf.Fix(), "pass --kubeconfig, set cluster.kubeconfig or KUBECONFIG") {
		t.Fatalf("%v", nf)
	}
}
