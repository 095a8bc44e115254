package phases

import (
	"context"
	"fmt"

	networkingv1 "k8s.io/api/networking/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

// NetworkPolicies applies the NetworkPolicies built from the config with server-side apply
// (field manager vaultctl); with --prune it deletes the ones this installation created that are
// no longer built. A cluster without a network plugin stores them but does not enforce them.
type NetworkPolicies struct {
	In    NetworkPoliciesInputs
	Kube  kubernetes.Interface
	Prune bool
}

// NetworkPoliciesInputs is what the phase reads of the config: the objects built from it.
type NetworkPoliciesInputs struct {
	Namespace string
	Desired   []networkingv1.NetworkPolicy
}

func networkPoliciesInputs(cfg *config.Config) NetworkPoliciesInputs {
	return NetworkPoliciesInputs{Namespace: cfg.Vault.Namespace, Desired: networkpolicy.Build(cfg)}
}

func (p *NetworkPolicies) Name() string { return "network-policies" }
func (p *NetworkPolicies) Description() string {
	return "only listed workloads reach Vault, on 8200 only"
}
func (p *NetworkPolicies) Inputs() any { return p.In }

func (p *NetworkPolicies) Check(ctx context.Context) (Diff, error) {
	changes, err := networkpolicy.DiffIn(ctx, p.Kube, p.In.Namespace, p.In.Desired, p.Prune)
	if err != nil {
		return Diff{}, Fail("check your kube credentials may manage networking.k8s.io NetworkPolicies", "%v", err)
	}
	d := Diff{Facts: []string{fmt.Sprintf("%d NetworkPolicies", len(p.In.Desired))}}
	for _, c := range changes {
		d.Changes = append(d.Changes, Change{Action: Action(c.Action), Object: "NetworkPolicy " + c.Object, Detail: c.Detail})
	}
	return d, nil
}

func (p *NetworkPolicies) Apply(ctx context.Context, _ Diff) error {
	_, err := networkpolicy.ApplyIn(ctx, p.Kube, p.In.Namespace, p.In.Desired, p.Prune)
	return err
}
