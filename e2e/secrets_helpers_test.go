package e2e

import (
	"bytes"
	"compress/gzip"
	"context"
	"encoding/base64"
	"encoding/hex"
	"errors"
	"io"
	"os"
	"path/filepath"
	"sort"
	"strconv"
	"strings"
	"testing"

	vaultapi "github.com/hashicorp/vault/api"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/awskms"
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
		k, v, _ := strings.Cut(kv, "=")
		t.Setenv(k, v)
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

// forms lists how a secret could leak: as is, base64 (std and URL), hex, and for base64
// recovery keys their decoded bytes in hex.
func forms(secret string) []string {
	out := []string{secret, base64.StdEncoding.EncodeToString([]byte(secret)), base64.RawURLEncoding.EncodeToString([]byte(secret)), hex.EncodeToString([]byte(secret))}
	if raw, err := base64.StdEncoding.DecodeString(secret); err == nil && len(raw) >= 16 {
		out = append(out, hex.EncodeToString(raw), base64.RawStdEncoding.EncodeToString(raw))
	}
	return out
}

// scanForSecrets searches every CLI output of this test run, the checkpoint and ownership
// ConfigMaps, every Helm release revision in ns (decoded: Helm stores base64 of gzip), and the
// Vault server logs for any form of the secrets.
func scanForSecrets(t *testing.T, ns string, secrets []string) {
	t.Helper()
	ctx := context.Background()
	var haystacks []struct{ name, text string }
	add := func(name, text string) { haystacks = append(haystacks, struct{ name, text string }{name, text}) }
	outputsMu.Lock()
	for i, o := range outputs {
		add("cli output #"+strconv.Itoa(i), o)
	}
	outputsMu.Unlock()
	for _, name := range []string{phases.CheckpointConfigMap, phases.OwnershipConfigMap} {
		if cm, err := kube(t).CoreV1().ConfigMaps(ns).Get(ctx, name, metav1.GetOptions{}); err == nil {
			for k, v := range cm.Data {
				add("ConfigMap "+name+"/"+k, v)
			}
		}
	}
	list, err := kube(t).CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{LabelSelector: "owner=helm"})
	if err != nil {
		t.Fatal(err)
	}
	for _, s := range list.Items {
		add("Helm release "+s.Name, decodeHelmRelease(t, s.Data["release"]))
	}
	logs, _ := filepath.Glob(filepath.Join(sb.Dir, "logs", "*.log"))
	for _, f := range logs {
		if b, err := os.ReadFile(f); err == nil {
			add("log "+filepath.Base(f), string(b))
		}
	}
	if len(haystacks) < 3 {
		t.Fatalf("scan found only %d places to search; the scan itself is broken", len(haystacks))
	}
	for _, s := range secrets {
		if len(s) < 8 {
			t.Fatalf("refusing to scan for a short secret")
		}
		for _, f := range forms(s) {
			for _, h := range haystacks {
				if strings.Contains(h.text, f) {
					t.Errorf("a secret leaked into %s", h.name)
				}
			}
		}
	}
}

func decodeHelmRelease(t *testing.T, data []byte) string {
	raw, err := base64.StdEncoding.DecodeString(string(data))
	if err != nil {
		return string(data)
	}
	if zr, err := gzip.NewReader(bytes.NewReader(raw)); err == nil {
		if b, err := io.ReadAll(zr); err == nil {
			return string(b)
		}
	}
	return string(raw)
}
