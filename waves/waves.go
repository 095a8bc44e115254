// Package waves runs the week-by-week migration plan of the config (migration.waves): which
// wave the estate is in, what blocks the next one, and running it. Every state it reports is
// observed from the live estate: migrate's journal and the plan of each namespace, the
// namespace label the admission policy honours, the policy itself, the injector and Vault. The
// only thing it writes for itself is when each wave finished, and it is never trusted over what
// is observed: a wave whose namespaces were rolled back is incomplete again, record or not.
package waves

import (
	"context"
	"fmt"
	"time"

	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/rest"

	"github.com/vaultctl/vaultctl/config"
)

// NamespaceState is how far a namespace of a wave has come, from migrate's journal and plan.
type NamespaceState string

const (
	NotStarted NamespaceState = "not started" // migrate has not touched it
	Planned    NamespaceState = "planned"     // a run began (Secrets copied, access or proof), no workload switched yet
	Migrated   NamespaceState = "migrated"    // workloads switched, not all verified, or work left
	Verified   NamespaceState = "verified"    // every workload of the wave reads from Vault, rolled out and Ready
	Pruned     NamespaceState = "pruned"      // verified, and the raw Secrets deleted
	RolledBack NamespaceState = "rolled back" // --rollback restored it
)

// done says the namespace counts towards its wave's completion.
func (s NamespaceState) done() bool { return s == Verified || s == Pruned }

// Kind is what running a wave does.
type Kind string

const (
	// KindNamespaces migrates the wave's namespaces (or only its workloads) with migrate namespace.
	KindNamespaces Kind = "namespaces"
	// KindGuard is the CI guard wave: a wave without namespaces whose gates name
	// admission-policy. Running it installs the admission policy and labels the namespaces of
	// the waves before it; the admission-policy gate is what it establishes.
	KindGuard Kind = "ci-guard"
	// KindGates is a wave without namespaces that is complete when its gates hold (the dynamic
	// database credentials week: the databases phase of apply does the work).
	KindGates Kind = "gates"
)

// NamespaceStatus is one namespace of a wave.
type NamespaceStatus struct {
	Namespace string         `json:"namespace"`
	State     NamespaceState `json:"state"`
	Detail    string         `json:"detail,omitempty"`
	// Labelled: vaultctl.io/migrated=true is set, so the admission policy denies raw Secrets.
	Labelled bool `json:"labelled"`
}

// GateResult is one gate's evaluation now.
type GateResult struct {
	Gate     string `json:"gate"`
	OK       bool   `json:"ok"`
	Evidence string `json:"evidence"`
	// Fix says what to do when the gate fails.
	Fix string `json:"fix,omitempty"`
	// Outcome marks a gate the wave itself establishes (admission-policy on the CI guard
	// wave): it is what completes the wave, not a condition to start it.
	Outcome bool `json:"outcome,omitempty"`
}

// WaveStatus is one wave.
type WaveStatus struct {
	Week       int               `json:"week"`
	Name       string            `json:"name"`
	Kind       Kind              `json:"kind"`
	Namespaces []string          `json:"namespaces"`
	Workloads  []string          `json:"workloads"`
	States     []NamespaceStatus `json:"states"`
	Gates      []GateResult      `json:"gates"`
	// Complete is observed now; Finished is when a run saw it complete first (the record).
	Complete bool       `json:"complete"`
	Finished *time.Time `json:"finished,omitempty"`
	// Detail says why an incomplete wave is incomplete, in a few words.
	Detail string `json:"detail,omitempty"`
}

// Blocking are the gates that stop the wave from starting.
func (w *WaveStatus) Blocking() []GateResult {
	var out []GateResult
	for _, g := range w.Gates {
		if !g.OK && !g.Outcome {
			out = append(out, g)
		}
	}
	return out
}

// Status is the whole plan.
type Status struct {
	Waves []WaveStatus `json:"waves"`
	// Next is the first incomplete wave, "" when every wave is complete.
	Next string `json:"next"`
}

// Wave returns the named wave's status, or nil.
func (s *Status) Wave(name string) *WaveStatus {
	for i := range s.Waves {
		if s.Waves[i].Name == name {
			return &s.Waves[i]
		}
	}
	return nil
}

// VaultReader is what the dynamic-db-credentials gate reads from Vault: the database
// connections and roles, and the Kubernetes-auth roles with their policies. vault.Client has it.
type VaultReader interface {
	ReadDBConnection(ctx context.Context, mount, name string) (map[string]any, error)
	ReadDBRole(ctx context.Context, mount, name string) (map[string]any, error)
	ListRoles(ctx context.Context, mount string) ([]string, error)
	ReadRole(ctx context.Context, mount, name string) (map[string]any, error)
	ReadPolicy(ctx context.Context, name string) (hcl string, found bool, err error)
}

// Observer reads the plan's state from the estate.
type Observer struct {
	Kube   kubernetes.Interface
	Config *config.Config
	// Vault is read by the dynamic-db-credentials gate only; a nil Vault (not reachable, or
	// no credentials) fails that gate with the reason in VaultErr.
	Vault    VaultReader
	VaultErr error
	// Manifests is a directory check-passing also checks (--manifests), "" for none.
	Manifests string
	Now       func() time.Time
	// KubeREST lets injector-healthy port-forward to an injector pod to verify its serving
	// certificate; DialInjector replaces that dial (tests). Neither: the caBundle alone.
	KubeREST     *rest.Config
	DialInjector DialFunc
}

func (o *Observer) now() time.Time {
	if o.Now != nil {
		return o.Now()
	}
	return time.Now()
}

// KindOf says what running w does.
func KindOf(w config.Wave) Kind {
	if len(w.Namespaces) > 0 || len(w.Workloads) > 0 {
		return KindNamespaces
	}
	for _, g := range w.Gates {
		if name, _, _ := config.ParseGate(g); name == config.GateAdmissionPolicy {
			return KindGuard
		}
	}
	return KindGates
}

// namespacesOf are the namespaces a wave migrates: its namespaces, and those its workloads
// (NS/KIND/NAME) live in.
func namespacesOf(w config.Wave) []string {
	seen := map[string]bool{}
	var out []string
	add := func(ns string) {
		if ns != "" && !seen[ns] {
			seen[ns] = true
			out = append(out, ns)
		}
	}
	for _, ns := range w.Namespaces {
		add(ns)
	}
	for _, wl := range w.Workloads {
		ns, _, _ := cutWorkload(wl)
		add(ns)
	}
	return out
}

// workloadsIn are the wave's workloads in ns as migrate --workload takes them (KIND/NAME);
// nil when the wave migrates ns whole.
func workloadsIn(w config.Wave, ns string) []string {
	var out []string
	for _, wl := range w.Workloads {
		if wns, kn, ok := cutWorkload(wl); ok && wns == ns {
			out = append(out, kn)
		}
	}
	return out
}

func cutWorkload(s string) (ns, kindName string, ok bool) {
	for i := 0; i < len(s); i++ {
		if s[i] == '/' {
			return s[:i], s[i+1:], true
		}
	}
	return "", "", false
}

func plural(n int, word string) string {
	if n == 1 {
		return fmt.Sprintf("1 %s", word)
	}
	return fmt.Sprintf("%d %ss", n, word)
}
