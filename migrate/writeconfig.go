package migrate

import (
	"fmt"

	"gopkg.in/yaml.v3"

	"github.com/vaultctl/vaultctl/config"
)

// WriteConfig prints the policies and roles migrate creates for the plan's migrated workloads as
// the config file's `policies:` and `roles:` entries, for teams that keep every Vault object in
// the file. Once they are in the config, apply's policies and roles phases keep them too (same
// names, same content), so either may run first.
func WriteConfig(p *Plan, defaults config.MigrationDefaults) ([]byte, error) {
	type rule struct {
		Path         string   `yaml:"path"`
		Capabilities []string `yaml:"capabilities,flow"`
	}
	type pol struct {
		Name  string `yaml:"name"`
		Rules []rule `yaml:"rules"`
	}
	type role struct {
		Name            string   `yaml:"name"`
		ServiceAccounts []string `yaml:"serviceAccounts,flow"`
		Namespaces      []string `yaml:"namespaces,flow"`
		Policies        []string `yaml:"policies,flow"`
		TTL             string   `yaml:"ttl,omitempty"`
		MaxTTL          string   `yaml:"maxTTL,omitempty"`
	}
	var doc struct {
		Policies []pol  `yaml:"policies"`
		Roles    []role `yaml:"roles"`
	}
	for _, wp := range p.Workloads {
		if wp.Action != WorkloadMigrate {
			continue
		}
		cp := configPolicy(wp)
		out := pol{Name: cp.Name}
		for _, r := range cp.Rules {
			out.Rules = append(out.Rules, rule{Path: r.Path, Capabilities: r.Capabilities})
		}
		doc.Policies = append(doc.Policies, out)
		cr := configRole(wp, p.Namespace, defaults)
		r := role{Name: cr.Name, ServiceAccounts: cr.ServiceAccounts, Namespaces: cr.Namespaces, Policies: cr.Policies}
		if cr.TTL.Duration > 0 {
			r.TTL = cr.TTL.String()
		}
		if cr.MaxTTL.Duration > 0 {
			r.MaxTTL = cr.MaxTTL.String()
		}
		doc.Roles = append(doc.Roles, r)
	}
	body, err := yaml.Marshal(doc)
	if err != nil {
		return nil, err
	}
	head := fmt.Sprintf("# vaultctl migrate namespace %s --write-config: the policies and roles of its migrated workloads.\n# Merge these entries into the policies: and roles: lists of your vaultctl config.\n", p.Namespace)
	return append([]byte(head), body...), nil
}
