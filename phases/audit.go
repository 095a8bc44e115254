package phases

import (
	"context"
	"fmt"
	"maps"
	"slices"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
)

// Audit enables the configured audit devices. Config validation already insists on two or more,
// since Vault refuses every request when all devices fail. A device whose type or options
// changed is disabled and enabled again (Vault cannot tune them in place).
type Audit struct{ Env *Env }

func (p *Audit) Name() string        { return "audit" }
func (p *Audit) Description() string { return "audit devices enabled (two or more)" }
func (p *Audit) Inputs() any         { return p.Env.Config.Audit }

func (p *Audit) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

func (p *Audit) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Audit) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Env.adminVault(ctx)
	if err != nil {
		return nil, nil, err
	}
	live, err := v.Sys().ListAuditWithContext(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing audit devices", err)
	}
	var steps []step
	var want, created []string
	for _, d := range p.Env.Config.Audit.Devices {
		d := d
		want = append(want, d.Path)
		enable := func(ctx context.Context) error {
			return v.Sys().EnableAuditWithOptionsWithContext(ctx, d.Path, &vaultapi.EnableAuditOptions{Type: d.Type, Options: d.Options, Description: "managed by vaultctl"})
		}
		cur, ok := live[d.Path+"/"]
		switch {
		case !ok:
			created = append(created, d.Path)
			steps = append(steps, step{Change{Create, "audit device " + d.Path + "/", d.Type + " " + describeOptions(d.Options)}, enable})
		case cur.Type != d.Type || !sameOptions(cur.Options, d.Options):
			steps = append(steps, step{Change{Update, "audit device " + d.Path + "/", "re-enable with " + d.Type + " " + describeOptions(d.Options)}, func(ctx context.Context) error {
				if err := v.Sys().DisableAuditWithContext(ctx, d.Path); err != nil {
					return err
				}
				return enable(ctx)
			}})
		}
	}
	owned, err := ownership{p.Env}.list(ctx, "audits")
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, pruneSteps(p.Env, "audits", owned, want, created, func(ctx context.Context, path string) error {
		return v.Sys().DisableAuditWithContext(ctx, path)
	})...)
	return steps, []string{fmt.Sprintf("%d audit devices: %s", len(want), strings.Join(want, ", "))}, nil
}

// sameOptions compares what Vault reports with the config; Vault adds defaults (format,
// prefix...) that the config need not repeat.
func sameOptions(live, want map[string]string) bool {
	for k, v := range want {
		if live[k] != v {
			return false
		}
	}
	return true
}

func describeOptions(o map[string]string) string {
	keys := slices.Sorted(maps.Keys(o))
	parts := make([]string, len(keys))
	for i, k := range keys {
		parts[i] = k + "=" + o[k]
	}
	return strings.Join(parts, " ")
}
