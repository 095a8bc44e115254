// Package wizard is `vaultctl init`: it asks a first-day user a handful of questions (on a
// terminal with huh forms, in huh's accessible line mode, or not at all with --set answers) and
// renders a commented vaultctl.yaml that passes `vaultctl config validate`. Every answer is checked
// by rendering a candidate config and running it through config.Parse, the code behind
// `config validate`, so the wizard can never accept what the validator would reject.
package wizard

import (
	"slices"
	"strings"

	"github.com/vaultctl/vaultctl/config"
)

// Recovery key custody choices.
const (
	RecoveryKMSFile = "kms-file" // KMS-envelope-encrypted keys, in the cluster and in a local file
	RecoveryPGP     = "pgp"      // one PGP-encrypted share per key holder
)

// Audit device presets offered by the wizard.
const (
	AuditFile   = "file"   // a file on the audit volume
	AuditStdout = "stdout" // a file device writing to stdout, so the pod log carries it
	AuditSyslog = "syslog" // the node's syslog
)

// Wave names, in migration order.
const (
	WavePilot      = "pilot"
	WaveStaging    = "staging"
	WaveProduction = "production"
)

// WaveNames lists the waves the wizard groups namespaces into, in order.
var WaveNames = []string{WavePilot, WaveStaging, WaveProduction}

// Default answers that have no better source.
const (
	DefaultRegion           = "us-east-1"
	DefaultKMSKeyID         = "alias/vault-unseal-key"
	DefaultRecoveryKeysFile = "vault-recovery-keys.enc"
	DefaultVaultNamespace   = "vault"
)

// Answers is everything the wizard asks. Render turns it into a config file.
type Answers struct {
	Kubeconfig string // cluster.kubeconfig; only set with --set
	Context    string // cluster.context; empty = the kubeconfig's current context at run time

	Mode      string // vault.mode
	Address   string // vault.address (external mode)
	Namespace string // vault.namespace
	Replicas  int    // vault.replicas (in-cluster mode)

	Region      string // vault.seal.awskms.region
	KMSKeyID    string // vault.seal.awskms.kmsKeyId
	CreateKey   bool   // vault.seal.awskms.createKey
	IRSARoleARN string // vault.seal.awskms.irsaRoleArn (in-cluster mode)

	// Waves maps a wave name (WaveNames) to the namespaces migrated in it.
	Waves map[string][]string

	// AllowedNamespaces may reach Vault; empty turns the NetworkPolicies off.
	AllowedNamespaces []string

	AuditDevices           []string // presets: AuditFile, AuditStdout, AuditSyslog
	AllowSingleAuditDevice bool     // audit.allowSingleDevice

	Recovery          string   // RecoveryKMSFile or RecoveryPGP
	RecoveryKeysFile  string   // vault.init.recoveryKeysFile (kms-file)
	PGPKeys           []string // vault.init.pgpKeys (pgp)
	RecoveryShares    int      // vault.init.recoveryShares; with PGP keys, one per key
	RecoveryThreshold int      // vault.init.recoveryThreshold; 0 = a majority of the shares
}

// Defaults returns the answers a user gets by pressing Enter everywhere, except the ones that
// have no safe default (the region, the namespaces to migrate, an external Vault's address).
func Defaults() Answers {
	return Answers{
		Mode:             config.ModeInCluster,
		Namespace:        DefaultVaultNamespace,
		Replicas:         3,
		KMSKeyID:         DefaultKMSKeyID,
		Waves:            map[string][]string{},
		AuditDevices:     []string{AuditFile, AuditStdout},
		Recovery:         RecoveryKMSFile,
		RecoveryKeysFile: DefaultRecoveryKeysFile,
		RecoveryShares:   5,
	}
}

// Clone returns a deep copy, so that a candidate can be edited without touching a.
func (a Answers) Clone() Answers {
	c := a
	c.Waves = make(map[string][]string, len(a.Waves))
	for k, v := range a.Waves {
		c.Waves[k] = slices.Clone(v)
	}
	c.AllowedNamespaces = slices.Clone(a.AllowedNamespaces)
	c.AuditDevices = slices.Clone(a.AuditDevices)
	c.PGPKeys = slices.Clone(a.PGPKeys)
	return c
}

// External reports whether Vault runs outside the cluster.
func (a Answers) External() bool { return a.Mode == config.ModeExternal }

// Shares is the number of recovery key shares: the answer, else one per PGP key, else 5.
func (a Answers) Shares() int {
	switch {
	case a.RecoveryShares > 0:
		return a.RecoveryShares
	case a.Recovery == RecoveryPGP && len(a.PGPKeys) > 0:
		return len(a.PGPKeys)
	default:
		return 5
	}
}

// Threshold is the number of shares needed to recover: the answer, or a majority of the shares.
func (a Answers) Threshold() int {
	if a.RecoveryThreshold != 0 {
		return a.RecoveryThreshold
	}
	return majority(a.Shares())
}

func majority(n int) int { return max(1, n/2+1) }

// wave is one non-empty migration wave as rendered.
type wave struct {
	Name       string
	Namespaces []string
}

// waves lists the waves that have namespaces, in order; Render numbers them week 1, 2, 3.
func (a Answers) waves() []wave {
	var out []wave
	for _, name := range WaveNames {
		if ns := a.Waves[name]; len(ns) > 0 {
			out = append(out, wave{name, ns})
		}
	}
	return out
}

// waveIndex is the index of a wave in migration.waves, or -1 when it has no namespaces.
func (a Answers) waveIndex(name string) int {
	for i, w := range a.waves() {
		if w.Name == name {
			return i
		}
	}
	return -1
}

// MigratedNamespaces lists every namespace in a wave, in wave order.
func (a Answers) MigratedNamespaces() []string {
	var out []string
	for _, w := range a.waves() {
		out = append(out, w.Namespaces...)
	}
	return out
}

// splitList splits a comma- or space-separated answer, dropping empty items.
func splitList(s string) []string {
	fields := strings.FieldsFunc(s, func(r rune) bool { return r == ',' || r == ' ' || r == '\t' || r == '\n' })
	out := make([]string, 0, len(fields))
	for _, f := range fields {
		if f = strings.TrimSpace(f); f != "" {
			out = append(out, f)
		}
	}
	return out
}
