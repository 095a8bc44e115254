package action

import (
	"context"
	"fmt"

	"github.com/vaultctl/vaultctl/doctor"
)

// DoctorResult is a diagnosis and what the user should know besides.
type DoctorResult struct {
	*doctor.Report
	Warnings []string
}

// Doctor diagnoses the pods of target that ask for Vault Agent injection. It only reads: no
// preflight (which probes KMS, which the diagnosis does not need), no lock. When Vault cannot
// be reached or logged in to, the Kubernetes-side checks still run and the failure is itself
// a finding (a stale CA breaks vaultctl's own login the way it breaks the pods').
func Doctor(ctx context.Context, c *Configuration, target doctor.Target) (*DoctorResult, error) {
	res := &DoctorResult{}
	ss, err := c.run(ctx, scope{name: "doctor"}, func(ctx context.Context, ss *session) error {
		d := &doctor.Doctor{Kube: ss.env.Kube, Config: ss.env.Config, KubeCA: ss.env.KubeCA}
		c.debugf("doctor: logging in to Vault")
		if v, err := ss.env.Vault.Admin(ctx); err != nil {
			d.VaultErr = err
		} else {
			d.Vault = v
			d.Tokens, _ = v.(doctor.TokenProbe)
		}
		c.debugf("doctor: examining %s", describeTarget(target))
		rep, err := d.Run(ctx, target)
		if err != nil {
			return err
		}
		if d.Vault != nil && ss.env.Config.Vault.Replicas > 1 {
			if h, err := ss.env.Health(ctx); err == nil && h.Leader == "" {
				rep.Findings = append([]doctor.Finding{{Severity: doctor.Error, Code: doctor.CodeVaultNoLeader, Object: "Vault",
					Message:  "the Raft cluster has no leader: every request, logins included, fails or hangs",
					Evidence: append([]string{fmt.Sprintf("autopilot: %d voters, leader none", h.Voters)}, h.Problems...),
					Fix:      "vaultctl status shows each node; bring a quorum of voters back (vault operator raft list-peers)"}}, rep.Findings...)
			}
		}
		res.Report = rep
		return nil
	})
	if ss != nil {
		res.Warnings = ss.warnings
	}
	return res, err
}

func describeTarget(t doctor.Target) string {
	switch {
	case t.Name == "" && t.Namespace == "":
		return "every pod asking for injection, all namespaces"
	case t.Name == "":
		return "every pod asking for injection in " + t.Namespace
	case t.Kind == "":
		return "pod " + t.Namespace + "/" + t.Name
	}
	return t.Kind + " " + t.Namespace + "/" + t.Name
}
