// Package manifests holds static Kubernetes objects that vaultctl applies, embedded in the
// binary so that an air-gapped install needs nothing else.
package manifests

import (
	"embed"
	"io/fs"
)

// files holds every embedded manifest, by its path under manifests/ (admission/..., ...).
//
//go:embed admission/*.yaml
var files embed.FS

// FS returns the embedded manifests.
func FS() fs.FS { return files }

// Read returns one embedded manifest by its path under manifests/, e.g.
// "admission/deny-raw-secrets.yaml".
func Read(name string) ([]byte, error) { return files.ReadFile(name) }

// AdmissionPolicyFile is the path of the raw-Secret admission policy.
const AdmissionPolicyFile = "admission/deny-raw-secrets.yaml"

// MigratedLabel is the namespace label that switches the admission policy on.
const MigratedLabel = "vaultctl.io/migrated"

// AdmissionPolicy returns the ValidatingAdmissionPolicy and its binding (two YAML documents)
// that deny new Secrets, other than the exempt types, in namespaces labelled
// vaultctl.io/migrated: "true".
func AdmissionPolicy() []byte {
	b, err := files.ReadFile(AdmissionPolicyFile)
	if err != nil {
		panic("manifests: " + err.Error()) // embedded at build time; cannot fail
	}
	return b
}
