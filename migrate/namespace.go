package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"maps"
	"slices"
	"strings"

	"k8s.io/client-go/dynamic"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

// Entrypoint is the argv a container that sets no command starts with: its image's ENTRYPOINT
// (and CMD when the container sets no args). Rewrite needs it to start the container through a
// shell that sources the agent's env file; the pod spec does not hold it.
type Entrypoint struct {
	Workload  WorkloadID
	Container string
	Argv      []string
}

// EntrypointSyntax is how --entrypoint is written, for messages and help.
const EntrypointSyntax = `KIND/NAME:CONTAINER=["PROGRAM","ARG",...]`

// ParseEntrypoint reads --entrypoint KIND/NAME:CONTAINER=JSON, the argv a JSON list of strings
// (as `docker inspect -f '{{json .Config.Entrypoint}}'` prints it), so that an argument with
// spaces or quotes is given exactly.
func ParseEntrypoint(s string) (Entrypoint, error) {
	target, argv, ok := strings.Cut(s, "=")
	if !ok {
		return Entrypoint{}, fmt.Errorf("--entrypoint %q: want %s, e.g. --entrypoint 'Deployment/web:app=[\"/usr/local/bin/web\",\"serve\"]'", s, EntrypointSyntax)
	}
	workload, container, ok := strings.Cut(target, ":")
	if !ok || container == "" {
		return Entrypoint{}, fmt.Errorf("--entrypoint %q: name the container after the workload, KIND/NAME:CONTAINER=..., e.g. Deployment/web:app", s)
	}
	id, err := ParseWorkload(workload)
	if err != nil {
		return Entrypoint{}, fmt.Errorf("--entrypoint %q: %s", s, strings.TrimPrefix(err.Error(), fmt.Sprintf("--workload %q: ", workload)))
	}
	var list []string
	if err := json.Unmarshal([]byte(argv), &list); err != nil {
		return Entrypoint{}, fmt.Errorf("--entrypoint %q: the argv after = must be a JSON list of strings, e.g. [\"/usr/local/bin/web\",\"serve\"] (quote it for the shell): %v", s, err)
	}
	if len(list) == 0 || list[0] == "" {
		return Entrypoint{}, fmt.Errorf("--entrypoint %q: the argv is empty; give the program first, e.g. [\"/usr/local/bin/web\"]", s)
	}
	return Entrypoint{Workload: id, Container: container, Argv: list}, nil
}

// NamespacePlan is a namespace's plan with what carrying it out needs.
type NamespacePlan struct {
	Plan *Plan
	// Inventory is what the plan was built from (it holds the Secrets' data: never print it).
	Inventory *Inventory
	// Rewrites are the rewritten pod templates, for every workload whose template Rewrite
	// changed: the ones the plan migrates, and the GitOps-managed ones it leaves to a commit.
	Rewrites map[WorkloadID]RewriteResult
}

// PlanNamespace discovers namespace, classifies its Secrets and plans every workload down to
// its rewritten pod template. It only reads the cluster.
func PlanNamespace(ctx context.Context, kube kubernetes.Interface, dyn dynamic.Interface, namespace string, opts PlanOptions) (*NamespacePlan, error) {
	inv, err := Discover(ctx, kube, dyn, namespace)
	if err != nil {
		return nil, err
	}
	return CompletePlan(inv, opts)
}

// CompletePlan is BuildPlan, then Rewrite for each workload it migrates: a workload whose pod
// template cannot be reproduced through the agent becomes manual with Rewrite's reasons, and
// one a GitOps controller manages is manual unless PatchGitOps (its changes say what to commit).
func CompletePlan(inv *Inventory, opts PlanOptions) (*NamespacePlan, error) {
	plan, err := BuildPlan(inv, opts)
	if err != nil {
		return nil, err
	}
	mounts := opts.KVMounts
	if len(mounts) == 0 {
		mounts = []string{opts.KV.Mount}
	}
	sources := map[string]Source{}
	for _, sp := range plan.Secrets {
		if sp.Action != SecretMigrate {
			continue
		}
		src := Source{Secret: sp.Name, KVPath: sp.KVPath, Mount: config.KVMountOf(mounts, sp.KVPath), Keys: sp.Keys}
		for _, k := range sp.Binary {
			if src.Binary == nil {
				src.Binary = map[string]bool{}
			}
			src.Binary[k] = true
		}
		sources[sp.Name] = src
	}
	entrypoints := map[WorkloadID]map[string][]string{}
	for _, e := range opts.Entrypoints {
		if entrypoints[e.Workload] == nil {
			entrypoints[e.Workload] = map[string][]string{}
		}
		entrypoints[e.Workload][e.Container] = e.Argv
	}
	out := &NamespacePlan{Plan: plan, Inventory: inv, Rewrites: map[WorkloadID]RewriteResult{}}
	for i := range plan.Workloads {
		wp := &plan.Workloads[i]
		if wp.Action != WorkloadMigrate {
			continue
		}
		id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
		w := inv.Workload(id)
		if w == nil {
			return nil, fmt.Errorf("%s: planned but not in the inventory", id) // BuildPlan plans only what it found
		}
		res, err := Rewrite(RewriteInput{
			Workload:    id,
			Template:    w.Template,
			Role:        wp.Role,
			AuthPath:    opts.AuthPath,
			Sources:     sources,
			Entrypoints: entrypoints[id],
			Job:         id.Kind == KindJob || id.Kind == KindCronJob,
		})
		if err != nil {
			return nil, fmt.Errorf("rewriting %s: %w", id, err)
		}
		if res.Action == WorkloadMigrate && wp.ServiceAccount != "" && res.Template.Spec.ServiceAccountName != wp.ServiceAccount {
			// Its role is bound to the ServiceAccount the plan gives it (its own, when it ran
			// as default): the pods must run as that one.
			res.Template.Spec.ServiceAccountName = wp.ServiceAccount
			res.Template.Spec.DeprecatedServiceAccount = ""
			res.Changes = append([]string{"runs as ServiceAccount " + wp.ServiceAccount + " (was " + w.ServiceAccount + ")"}, res.Changes...)
		}
		if res.Action == WorkloadMigrate && res.Template.Labels[networkpolicy.VaultClientLabel] != networkpolicy.VaultClientValue {
			// What vaultctl's NetworkPolicies admit to Vault (networkpolicy.BuildMigrated).
			res.Template.Labels = maps.Clone(res.Template.Labels)
			if res.Template.Labels == nil {
				res.Template.Labels = map[string]string{}
			}
			res.Template.Labels[networkpolicy.VaultClientLabel] = networkpolicy.VaultClientValue
			res.Changes = append(res.Changes, "label its pods "+networkpolicy.VaultClientLabel+"="+networkpolicy.VaultClientValue+": vaultctl's NetworkPolicies admit those to Vault on 8200")
		}
		mergeRewrite(wp, w, res, opts.PatchGitOps)
		if res.Action == WorkloadMigrate {
			out.Rewrites[id] = res
		}
	}
	return out, nil
}

// mergeRewrite folds a workload's rewrite into its plan.
func mergeRewrite(wp *WorkloadPlan, w *Workload, res RewriteResult, patchGitOps bool) {
	switch res.Action {
	case WorkloadManual:
		// Nothing is created for it (no ServiceAccount, role or policy): it keeps reading
		// Kubernetes, so what the plan said about its new identity no longer applies.
		warnings := wp.Warnings
		if wp.CreateServiceAccount {
			warnings = slices.DeleteFunc(warnings, func(s string) bool { return strings.HasPrefix(s, "RoleBinding ") })
		}
		*wp = WorkloadPlan{
			Kind: wp.Kind, Name: wp.Name, Action: WorkloadManual, ServiceAccount: w.ServiceAccount,
			Changes:    []string{"nothing is changed for it until the reasons under manual are fixed: it keeps reading its Secrets from Kubernetes (they are copied to KV all the same, and --prune leaves a Secret that a workload not migrated reads)"},
			Warnings:   warnings,
			Manual:     res.Manual,
			References: wp.References,
		}
		return
	case WorkloadSkip:
		wp.Action = WorkloadSkip
		wp.Role, wp.Policy, wp.KVPaths, wp.ServiceAccount, wp.CreateServiceAccount = "", "", nil, w.ServiceAccount, false
		wp.Changes = []string{"nothing to change: its pod template reads no Secret that is migrated"}
		return
	}
	wp.Changes = append(wp.Changes, res.Changes...)
	wp.Warnings = append(wp.Warnings, res.Warnings...)
	manager, managed := GitOpsManager(w.Meta)
	if !managed || patchGitOps {
		return
	}
	wp.Action = WorkloadManual
	wp.Warnings = slices.DeleteFunc(wp.Warnings, func(s string) bool { return strings.HasPrefix(s, "managed by ") })
	wp.Manual = append(wp.Manual, "managed by "+manager+", which would revert a live patch on its next sync: vaultctl does not patch it live; commit the changes listed here to its source")
	wp.Changes = append([]string{"not patched live (GitOps-managed): the changes below are to be committed to its source"}, wp.Changes...)
}
