package phases

import (
	"context"
	"maps"
	"slices"
	"strings"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/plural"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// auditMark is the description vaultctl gives its audit devices: the mark --prune checks.
const auditMark = "managed by vaultctl"

// Audit enables the configured audit devices. Config validation already insists on two or more,
// since Vault refuses every request when all devices fail. A device whose type or options
// changed is disabled and enabled again (Vault cannot tune them in place).
type Audit struct {
	In     AuditInputs
	Vault  VaultAdmin
	Owners Owners
	Prune  bool
}

// AuditInputs is what the audit phase reads of the config.
type AuditInputs struct {
	Audit config.Audit
	// Namespace holds the ownership record: another namespace is another installation.
	Namespace string
}

func auditInputs(cfg *config.Config) AuditInputs {
	return AuditInputs{Audit: cfg.Audit, Namespace: cfg.Vault.Namespace}
}

func (p *Audit) Name() string        { return "audit" }
func (p *Audit) Description() string { return "audit devices enabled (two or more)" }
func (p *Audit) Inputs() any         { return p.In }

func (p *Audit) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

// Apply enables devices one after another: a half-enabled set is still audited.
func (p *Audit) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

func (p *Audit) observe(ctx context.Context) ([]step, []string, error) {
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	live, err := v.ListAuditDevices(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing audit devices", err)
	}
	devices := map[string]config.AuditDevice{}
	var want []string
	for _, d := range p.In.Audit.Devices {
		want = append(want, d.Path)
		devices[d.Path] = d
	}
	set := ownedSet{
		kind: "audits", noun: "audit device", want: want, owners: p.Owners, prune: p.Prune,
		ensure: func(_ context.Context, path string) (*step, error) { return ensureAudit(v, live, devices[path]), nil },
		marked: func(_ context.Context, path string) (bool, error) {
			cur, ok := live[path+"/"]
			return ok && cur.Description == auditMark, nil
		},
		remove: func(ctx context.Context, path string) error { return v.DisableAuditDevice(ctx, path) },
	}
	steps, facts, err := set.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	return steps, append([]string{plural.S(len(want), "audit device") + ": " + strings.Join(want, ", ")}, facts...), nil
}

func ensureAudit(v vault.Audit, live map[string]vault.AuditDevice, d config.AuditDevice) *step {
	enable := func(ctx context.Context) error {
		return v.EnableAuditDevice(ctx, d.Path, vault.AuditDevice{Type: d.Type, Options: d.Options, Description: auditMark})
	}
	cur, ok := live[d.Path+"/"]
	switch {
	case !ok:
		return &step{change: Change{Create, "audit device " + d.Path + "/", d.Type + " " + describeOptions(d.Options)}, apply: enable}
	case cur.Type != d.Type || !sameOptions(cur.Options, d.Options):
		return &step{change: Change{Update, "audit device " + d.Path + "/", "re-enable with " + d.Type + " " + describeOptions(d.Options)}, apply: func(ctx context.Context) error {
			if err := v.DisableAuditDevice(ctx, d.Path); err != nil {
				return err
			}
			return enable(ctx)
		}}
	}
	return nil
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
