package phases

import (
	"context"
	"fmt"

	"github.com/vaultctl/vaultctl/networkpolicy"
)

// NetworkPolicies applies the NetworkPolicies built from the config with server-side apply
// (field manager vaultctl); with --prune it deletes the ones this installation created that are
// no longer built. A cluster without a network plugin stores them but does not enforce them.
type NetworkPolicies struct{ Env *Env }

func (p *NetworkPolicies) Name() string { return "network-policies" }
func (p *NetworkPolicies) Description() string {
	return "only listed workloads reach Vault, on 8200 only"
}
func (p *NetworkPolicies) Inputs() any {
	return struct{ N, NS, Mode any }{p.Env.Config.NetworkPolicies, p.Env.Config.Vault.Namespace, p.Env.Config.Vault.Mode}
}

func (p *NetworkPolicies) Check(ctx context.Context) (Diff, error) {
	desired := networkpolicy.Build(p.Env.Config)
	changes, err := networkpolicy.DiffIn(ctx, p.Env.Kube, p.Env.Config.Vault.Namespace, desired, p.Env.Prune)
	if err != nil {
		return Diff{}, Fail("check your kube credentials may manage networking.k8s.io NetworkPolicies", "%v", err)
	}
	d := Diff{Facts: []string{fmt.Sprintf("%d NetworkPolicies", len(desired))}}
	for _, c := range changes {
		d.Changes = append(d.Changes, Change{Action: Action(c.Action), Object: "NetworkPolicy " + c.Object, Detail: c.Detail})
	}
	return d, nil
}

func (p *NetworkPolicies) Apply(ctx context.Context, _ Diff) error {
	_, err := networkpolicy.ApplyIn(ctx, p.Env.Kube, p.Env.Config.Vault.Namespace, networkpolicy.Build(p.Env.Config), p.Env.Prune)
	return err
}
