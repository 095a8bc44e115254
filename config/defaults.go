package config

import "time"

// Default images; every one is overridable for air-gapped registries (`vaultctl images` lists them).
const (
	DefaultVaultImage    = "hashicorp/vault:1.21.1"
	DefaultInjectorImage = "hashicorp/vault-k8s:1.7.0"
	DefaultAgentImage    = "hashicorp/vault:1.21.1"
)

// DefaultRotationMaxAge is the quarter after which status asks for `vaultctl rotate`.
const DefaultRotationMaxAge = 90 * 24 * time.Hour

// DefaultMigrationKVPath puts each migrated Secret under its namespace on the first kv mount.
const DefaultMigrationKVPath = "{mount}/{namespace}/{secret}"

// ApplyDefaults fills every unset value with the default documented in config.example.yaml.
func ApplyDefaults(c *Config) {
	v := &c.Vault
	setStr(&v.Mode, ModeInCluster)
	setStr(&v.Namespace, "vault")
	if v.Replicas == 0 {
		v.Replicas = 3
	}
	if v.Raft.PerformanceMultiplier == 0 {
		v.Raft.PerformanceMultiplier = 1
	}
	setDur(&v.Raft.AutopilotStabilizationTime, 10*time.Second)
	setStr(&v.Seal.Type, "awskms")
	setStr(&v.TLS.Mode, "generate")
	setStr(&v.TLS.SecretName, "vault-server-tls")
	setDur(&v.TLS.RenewBefore, 30*24*time.Hour)
	setStr(&v.Images.Vault, DefaultVaultImage)
	setStr(&v.Images.Injector, DefaultInjectorImage)
	setStr(&v.Images.Agent, DefaultAgentImage)
	if v.Init.RecoveryShares == 0 {
		v.Init.RecoveryShares = 5
	}
	if v.Init.RecoveryThreshold == 0 {
		v.Init.RecoveryThreshold = min(3, v.Init.RecoveryShares)
	}
	setDur(&v.Rotation.MaxAge, DefaultRotationMaxAge)
	setStr(&v.Resources.CPU, "250m")
	setStr(&v.Resources.Memory, "256Mi")
	setStr(&v.Storage.DataSize, "10Gi")
	setStr(&v.Storage.AuditSize, "10Gi")
	setStr(&v.Snapshots.Dir, "vaultctl-snapshots")

	if c.Injector.Enabled == nil {
		enabled := true
		c.Injector.Enabled = &enabled
	}
	if c.Injector.Replicas == 0 {
		c.Injector.Replicas = 2
	}
	setStr(&c.Injector.FailurePolicy, "Ignore")

	setStr(&c.KubernetesAuth.Path, "kubernetes")
	setStr(&c.KubernetesAuth.TokenReviewer, ReviewerJWT)

	if len(c.KV) == 0 {
		c.KV = []KVMount{{Path: "secret", Description: "KV v2 secrets managed by vaultctl"}}
	}
	setStr(&c.Migration.KVPath, DefaultMigrationKVPath)
	setDur(&c.Migration.Defaults.TTL, time.Hour)
	setDur(&c.Migration.Defaults.MaxTTL, 4*time.Hour)
	if c.Leases.WarnCount == 0 {
		c.Leases.WarnCount = 1000
	}
	setDur(&c.Leases.WarnAge, 24*time.Hour)
	for i := range c.Databases {
		setStr(&c.Databases[i].Mount, "database")
		setStr(&c.Databases[i].Plugin, "postgresql-database-plugin")
	}
}

// InjectorEnabled reports whether the injector is to be installed.
func (c *Config) InjectorEnabled() bool { return c.Injector.Enabled == nil || *c.Injector.Enabled }

// DenyParentEnabled reports whether the policy gets an explicit deny on its rules' parents.
func (p Policy) DenyParentEnabled() bool { return p.DenyParent == nil || *p.DenyParent }

// External reports whether Vault runs outside the cluster.
func (c *Config) External() bool { return c.Vault.Mode == ModeExternal }

func setStr(s *string, def string) {
	if *s == "" {
		*s = def
	}
}

func setDur(d *Duration, def time.Duration) {
	if d.Duration == 0 {
		d.Duration = def
	}
}
