package doctor

import (
	"context"
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// logHit is an agent log line that names a cause.
type logHit struct {
	code      string
	container string
	line      string
	used      bool // attached to a finding the live state confirmed
}

// logPattern maps Vault's (or the agent's) error text to a cause. Order matters: the first
// pattern that matches a line wins.
type logPattern struct {
	code  string
	match func(line string) bool
}

func contains(subs ...string) func(string) bool {
	return func(l string) bool {
		for _, s := range subs {
			if !strings.Contains(l, s) {
				return false
			}
		}
		return true
	}
}

var logPatterns = []logPattern{
	{CodeSANotBound, contains("service account name not authorized")},
	{CodeNamespaceNotBound, contains("namespace not authorized")},
	{CodeRoleMissing, contains("invalid role name")},
	{CodeAudience, contains("invalid audience")},
	{CodeAudience, contains("aud", "claim does not match")},
	// The TokenReview Vault makes to the API server: a CA Vault does not trust for it.
	{CodeStaleCA, func(l string) bool {
		return strings.Contains(l, "tokenreviews") && (strings.Contains(l, "x509") || strings.Contains(l, "certificate"))
	}},
	{CodeReviewerJWT, func(l string) bool {
		return strings.Contains(l, "tokenreviews") && (strings.Contains(l, "401") || strings.Contains(l, "Unauthorized") || strings.Contains(l, "forbidden"))
	}},
	{CodeVaultSealed, contains("Vault is sealed")},
	{CodeVaultNoLeader, contains("active cluster node not found")},
	{CodePathDenied, func(l string) bool {
		return strings.Contains(l, "permission denied") && !strings.Contains(l, "/login")
	}},
	{CodeVaultUnreachable, func(l string) bool {
		for _, s := range []string{"connection refused", "no such host", "i/o timeout", "context deadline exceeded", "network is unreachable", "no route to host"} {
			if strings.Contains(l, s) {
				return true
			}
		}
		return false
	}},
	{CodeAgentLogin, func(l string) bool {
		return strings.Contains(l, "error authenticating") || (strings.Contains(l, "[ERROR]") && strings.Contains(l, "auth"))
	}},
}

const (
	maxEvidenceLine = 400
	maxLogScan      = 256 << 10
)

// readLogs reads the agents' logs (vault-agent-init while it has not completed, vault-agent
// when it is not ready) through the Kubernetes API, as kubectl logs does, and keeps the last
// line per cause.
func (c *podCheck) readLogs(ctx context.Context) {
	for _, name := range []string{initContainer, sidecarContainer} {
		st, found := containerStatus(c.pod, name)
		if !found {
			continue
		}
		if st.State.Terminated != nil && st.State.Terminated.ExitCode == 0 {
			continue
		}
		if st.Ready && name == sidecarContainer {
			continue // a running init container is judged by whether it completed, not Ready
		}
		c.scanLog(ctx, name, false)
		if st.RestartCount > 0 && len(c.logs) == 0 {
			c.scanLog(ctx, name, true)
		}
	}
}

func containerStatus(p *corev1.Pod, name string) (corev1.ContainerStatus, bool) {
	for _, list := range [][]corev1.ContainerStatus{p.Status.InitContainerStatuses, p.Status.ContainerStatuses} {
		for _, s := range list {
			if s.Name == name {
				return s, true
			}
		}
	}
	return corev1.ContainerStatus{}, false
}

func (c *podCheck) scanLog(ctx context.Context, name string, previous bool) {
	// No tailLines: not every kubelet (kwok among them) honours it; an agent's log is small,
	// and only its end is scanned.
	b, err := c.d.Kube.CoreV1().Pods(c.pod.Namespace).GetLogs(c.pod.Name, &corev1.PodLogOptions{Container: name, Previous: previous}).DoRaw(ctx)
	if err != nil {
		return // no log yet (the container has not started): the other checks still run
	}
	if len(b) > maxLogScan {
		b = b[len(b)-maxLogScan:]
	}
	last := map[string]string{}
	var order []string
	for _, line := range strings.Split(string(b), "\n") {
		for _, p := range logPatterns {
			if p.match(line) {
				if _, seen := last[p.code]; !seen {
					order = append(order, p.code)
				}
				// The agent continues a multi-line error with "| ".
				last[p.code] = strings.TrimPrefix(strings.TrimSpace(line), "| ")
				break
			}
		}
	}
	for _, code := range order {
		l := last[code]
		if len(l) > maxEvidenceLine {
			l = l[:maxEvidenceLine] + "..."
		}
		c.logs = append(c.logs, logHit{code: code, container: name, line: l})
	}
}

// logEvidence returns the log lines for the codes (marking them used), as evidence. The
// agent's generic "error authenticating" line is given only when no line names the cause.
func (c *podCheck) logEvidence(codes ...string) []string {
	var specific, generic []string
	for i := range c.logs {
		for _, code := range codes {
			if c.logs[i].code != code {
				continue
			}
			c.logs[i].used = true
			line := fmt.Sprintf("%s log: %s", c.logs[i].container, c.logs[i].line)
			if code == CodeAgentLogin {
				generic = append(generic, line)
			} else {
				specific = append(specific, line)
			}
		}
	}
	if len(specific) > 0 {
		return specific
	}
	return generic
}

// unexplainedLogs reports what the agent's log says when the live state did not show the
// cause (the log is cause 1's evidence; Vault's text names the cause).
func (c *podCheck) unexplainedLogs() {
	// A generic login error is only worth reporting when nothing more specific was found.
	specific := false
	for _, f := range c.out {
		if f.Severity == Error {
			specific = true
		}
	}
	for i := range c.logs {
		h := &c.logs[i]
		if h.used || (h.code == CodeAgentLogin && specific) {
			continue
		}
		h.used = true
		msg, fix := logCause(h.code, c)
		c.add(Finding{Severity: Error, Code: h.code, Message: msg,
			Evidence: []string{fmt.Sprintf("%s log: %s", h.container, h.line)}, Fix: fix})
	}
}

func logCause(code string, c *podCheck) (msg, fix string) {
	mount, role := c.authMount(), c.pod.Annotations[annRole]
	switch code {
	case CodeSANotBound:
		return "Vault refuses the login: the pod's ServiceAccount is not bound to role " + role,
			fmt.Sprintf("add %s to the role's bound_service_account_names (roles[].serviceAccounts, then vaultctl apply --only roles)", c.serviceAccount())
	case CodeNamespaceNotBound:
		return "Vault refuses the login: the pod's namespace is not bound to role " + role,
			fmt.Sprintf("add %s to the role's bound_service_account_namespaces (roles[].namespaces, then vaultctl apply --only roles)", c.pod.Namespace)
	case CodeRoleMissing:
		return fmt.Sprintf("role %s does not exist at auth/%s", role, mount), "create the role (roles[] in the config, then vaultctl apply --only roles) or correct " + annRole
	case CodeAudience:
		return "the JWT's audience does not match the role's audience", fmt.Sprintf("vault read auth/%s/role/%s shows the audience; set it to the token's audience or remove it (roles[].audience)", mount, role)
	case CodeStaleCA:
		return "Vault cannot verify the API server when it reviews the pod's token: its kubernetes_ca_cert is not the cluster's CA (rotated?)",
			"vaultctl apply --only kubernetes-auth (writes the cluster CA into auth/" + mount + "/config)"
	case CodeReviewerJWT:
		return "the API server refuses Vault's token reviewer JWT (expired, or its Secret or ServiceAccount was recreated)",
			"vaultctl apply --only kubernetes-auth (writes a fresh reviewer JWT into auth/" + mount + "/config)"
	case CodeVaultSealed:
		return "the agent reaches a sealed Vault", "check the seal (vaultctl status; vaultctl apply --only kms)"
	case CodeVaultNoLeader:
		return "the agent reaches a Vault node that has no active leader", "check Raft health: vaultctl status (voters, leader)"
	case CodePathDenied:
		return "the agent logged in but its token may not read a path it renders (403 permission denied)",
			"give one of the role's policies read on the path in the log line (KV v2: the API path has data/)"
	case CodeVaultUnreachable:
		msg := "the agent cannot reach Vault"
		fix := "check the injector's AGENT_INJECT_VAULT_ADDR (or the pod's vault.hashicorp.com/service annotation) and the network path to Vault on 8200"
		if c.d.Config.NetworkPolicies.Enabled {
			fix += "; vaultctl's NetworkPolicies may block it: add the namespace to networkPolicies.allowedClients"
		}
		return msg, fix
	}
	return "the Vault agent fails to log in", fmt.Sprintf("read the full log: kubectl logs -n %s %s -c %s", c.pod.Namespace, c.pod.Name, initContainer)
}
