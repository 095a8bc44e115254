package migrate

import (
	"fmt"
	"os"
	"path/filepath"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"sigs.k8s.io/yaml"
)

// A workload that Argo CD, Flux or Helm manages would be reverted by its controller on the next
// sync if migrate patched it live. Its change goes to the repository instead: one RFC 6902 patch
// per workload replacing the pod template (exactly the template migrate would have written, so
// nothing depends on how a tool merges lists), plus a kustomization fragment that applies them.

// GitOpsPatch is one workload's patch file.
type GitOpsPatch struct {
	Workload WorkloadID
	File     string // file name inside the output directory
	Body     []byte
}

type jsonPatchOp struct {
	Op    string                 `json:"op"`
	Path  string                 `json:"path"`
	Value corev1.PodTemplateSpec `json:"value"`
}

// templatePointer is where a kind keeps its pod template.
func templatePointer(kind string) (string, error) {
	switch kind {
	case "Deployment", "StatefulSet", "DaemonSet", "Job":
		return "/spec/template", nil
	case "CronJob":
		return "/spec/jobTemplate/spec/template", nil
	}
	return "", fmt.Errorf("a %s has no pod template to patch in a repository", kind)
}

// apiVersionOf is the group/version a kustomize patch target names.
func apiVersionOf(kind string) (group, version string) {
	switch kind {
	case "Job", "CronJob":
		return "batch", "v1"
	}
	return "apps", "v1"
}

// GitOpsPatches renders the patch of every target workload, in name order.
func GitOpsPatches(ns string, targets map[WorkloadID]corev1.PodTemplateSpec) ([]GitOpsPatch, error) {
	ids := make([]WorkloadID, 0, len(targets))
	for id := range targets {
		ids = append(ids, id)
	}
	sort.Slice(ids, func(i, j int) bool { return ids[i].String() < ids[j].String() })
	var out []GitOpsPatch
	for _, id := range ids {
		ptr, err := templatePointer(id.Kind)
		if err != nil {
			return nil, fmt.Errorf("%s: %w", id, err)
		}
		body, err := yaml.Marshal([]jsonPatchOp{{Op: "replace", Path: ptr, Value: targets[id]}})
		if err != nil {
			return nil, err
		}
		head := fmt.Sprintf("# vaultctl migrate namespace %s: %s reads its secrets through the Vault Agent Injector.\n"+
			"# RFC 6902 patch replacing the pod template; apply it with the kustomization fragment next to it.\n", ns, id)
		out = append(out, GitOpsPatch{Workload: id, File: strings.ToLower(id.Kind) + "-" + id.Name + ".patch.yaml", Body: append([]byte(head), body...)})
	}
	return out, nil
}

// KustomizationFragment lists the patches as kustomize's `patches:` entries.
func KustomizationFragment(patches []GitOpsPatch) []byte {
	var b strings.Builder
	b.WriteString("# Add these entries to the kustomization.yaml that builds the namespace.\npatches:\n")
	for _, p := range patches {
		g, v := apiVersionOf(p.Workload.Kind)
		fmt.Fprintf(&b, "  - path: %s\n    target:\n      group: %s\n      version: %s\n      kind: %s\n      name: %s\n", p.File, g, v, p.Workload.Kind, p.Workload.Name)
	}
	return []byte(b.String())
}

// WriteGitOps writes the patches and the fragment into dir, creating it; existing files of the
// same names are replaced (the content is deterministic).
func WriteGitOps(dir, ns string, targets map[WorkloadID]corev1.PodTemplateSpec) ([]string, error) {
	patches, err := GitOpsPatches(ns, targets)
	if err != nil {
		return nil, err
	}
	if err := os.MkdirAll(dir, 0o755); err != nil {
		return nil, fmt.Errorf("--gitops-out %s: %w", dir, err)
	}
	var files []string
	for _, p := range patches {
		f := filepath.Join(dir, p.File)
		if err := os.WriteFile(f, p.Body, 0o644); err != nil {
			return nil, fmt.Errorf("--gitops-out: %w", err)
		}
		files = append(files, f)
	}
	f := filepath.Join(dir, "kustomization-patches.yaml")
	if err := os.WriteFile(f, KustomizationFragment(patches), 0o644); err != nil {
		return nil, fmt.Errorf("--gitops-out: %w", err)
	}
	return append(files, f), nil
}
