package check

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"testing"
)

// benchManifest is one generated file: a Deployment and its Service, about 700 bytes, the shape
// bench/check.sh writes too. Every 100th Deployment lacks injection so that both the grep
// script and vaultctl have something to report.
func benchManifest(i int) string {
	ann := `      annotations:
        vault.hashicorp.com/agent-inject: "true"
        vault.hashicorp.com/role: "app"
        vault.hashicorp.com/agent-inject-secret-db: "secret/data/production/app-%05[1]d"
`
	if i%100 == 99 {
		ann = ""
	}
	return fmt.Sprintf(`apiVersion: apps/v1
kind: Deployment
metadata:
  name: app-%05[1]d
  namespace: production
  labels:
    app: app-%05[1]d
spec:
  replicas: 2
  selector:
    matchLabels:
      app: app-%05[1]d
  template:
    metadata:
      labels:
        app: app-%05[1]d
`+ann+`    spec:
      serviceAccountName: app
      containers:
        - name: app
          image: registry.example.com/app:1.4.2
          ports:
            - containerPort: 8080
---
apiVersion: v1
kind: Service
metadata:
  name: app-%05[1]d
  namespace: production
spec:
  selector:
    app: app-%05[1]d
  ports:
    - port: 80
      targetPort: 8080
`, i)
}

// writeBenchTree writes n files under dir/k8s/production, where the origin article's script looks.
func writeBenchTree(tb testing.TB, dir string, n int) string {
	tb.Helper()
	root := filepath.Join(dir, "k8s", "production")
	if err := os.MkdirAll(root, 0o755); err != nil {
		tb.Fatal(err)
	}
	for i := range n {
		if err := os.WriteFile(filepath.Join(root, fmt.Sprintf("app-%05d.yaml", i)), []byte(benchManifest(i)), 0o644); err != nil {
			tb.Fatal(err)
		}
	}
	return filepath.Join(dir, "k8s")
}

// BenchmarkCheck10k checks a generated tree of 10,000 files (about 7 MB). bench/check.sh compares
// the whole command with the origin article's grep script and with cat.
func BenchmarkCheck10k(b *testing.B) {
	root := writeBenchTree(b, b.TempDir(), 10000)
	var size int64
	filepath.WalkDir(root, func(_ string, d os.DirEntry, _ error) error {
		if !d.IsDir() {
			if fi, err := d.Info(); err == nil {
				size += fi.Size()
			}
		}
		return nil
	})
	b.SetBytes(size)
	b.ReportAllocs()
	b.ResetTimer()
	for b.Loop() {
		rep, err := Run(context.Background(), Options{}, []string{root}, nil)
		if err != nil {
			b.Fatal(err)
		}
		if rep.Files != 10000 || rep.Objects != 20000 || len(rep.Findings) != 100 {
			b.Fatalf("files %d objects %d findings %d; want 10000, 20000, 100", rep.Files, rep.Objects, len(rep.Findings))
		}
	}
}
