// Package charts holds the Helm charts vaultctl installs, embedded in the binary, and the
// mapping from vaultctl's config to their values.
package charts

import (
	"embed"
	"fmt"
	"io/fs"
	"path"
	"sync"

	"helm.sh/helm/v3/pkg/chart"
	"helm.sh/helm/v3/pkg/chart/loader"
)

// The vault chart: the server (HA Raft StatefulSet, Services, RBAC, PodDisruptionBudget) and the
// Vault Agent Injector. vaultctl installs it twice: release "vault" with the server only, and
// the injector's release with the injector only (two phases upgrading one release would delete
// each other's objects).
//
//go:embed all:vault
var vaultFS embed.FS

// Release names vaultctl uses for the vault chart.
const (
	ServerRelease   = "vault"
	InjectorRelease = "vault-agent-injector"
)

var vaultFiles = sync.OnceValues(func() ([]*loader.BufferedFile, error) {
	var files []*loader.BufferedFile
	err := fs.WalkDir(vaultFS, "vault", func(p string, d fs.DirEntry, err error) error {
		if err != nil || d.IsDir() {
			return err
		}
		data, err := vaultFS.ReadFile(p)
		if err != nil {
			return err
		}
		rel := p[len("vault/"):]
		files = append(files, &loader.BufferedFile{Name: path.Clean(rel), Data: data})
		return nil
	})
	return files, err
})

// Vault returns the embedded vault chart, freshly loaded: Helm may modify a chart while
// installing it, so callers never share one.
func Vault() (*chart.Chart, error) {
	files, err := vaultFiles()
	if err != nil {
		return nil, fmt.Errorf("reading embedded vault chart: %w", err)
	}
	ch, err := loader.LoadFiles(files)
	if err != nil {
		return nil, fmt.Errorf("loading embedded vault chart: %w", err)
	}
	return ch, nil
}
