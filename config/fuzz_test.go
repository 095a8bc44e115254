package config

import (
	"os"
	"testing"
)

// FuzzParse feeds arbitrary bytes to the loader: it may reject them, but never panic.
func FuzzParse(f *testing.F) {
	f.Add([]byte(base))
	if b, err := os.ReadFile("../config.example.yaml"); err == nil {
		f.Add(b)
	}
	f.Add([]byte("a: &x [*x]\n"))
	f.Add([]byte("vault: {replicas: !!binary aGVsbG8=}\n"))
	f.Fuzz(func(t *testing.T, data []byte) {
		l, err := Parse("fuzz.yaml", data, LoadOptions{Environ: []string{}})
		if err == nil && l.Config == nil {
			t.Fatal("nil config without error")
		}
	})
}
