package doctor

import (
	"context"
	"fmt"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"

	"github.com/vaultctl/vaultctl/check"
)

// The vault-k8s annotations the doctor reads.
const (
	annInject          = "vault.hashicorp.com/agent-inject"
	annStatus          = "vault.hashicorp.com/agent-inject-status"
	annRole            = "vault.hashicorp.com/role"
	annAuthPath        = "vault.hashicorp.com/auth-path"
	annSecretPrefix    = "vault.hashicorp.com/agent-inject-secret-"
	annCommandPrefix   = "vault.hashicorp.com/agent-inject-command-"
	annPrePopulateOnly = "vault.hashicorp.com/agent-pre-populate-only"
	annTokenVolume     = "vault.hashicorp.com/agent-service-account-token-volume-name"
	annConfigMap       = "vault.hashicorp.com/agent-configmap"

	initContainer    = "vault-agent-init"
	sidecarContainer = "vault-agent"
	tokenMountPath   = "/var/run/secrets/kubernetes.io/serviceaccount"
)

// podCheck is one pod's diagnosis in progress.
type podCheck struct {
	d   *Doctor
	pod *corev1.Pod
	obj string
	// template says pod stands in for a workload's pod template: it has no agent until the
	// injector mutates a pod made from it.
	template bool
	out      []Finding
	logs     []logHit
}

func (c *podCheck) add(f Finding) *Finding {
	if f.Object == "" {
		f.Object = c.obj
	}
	if f.Evidence == nil {
		f.Evidence = []string{}
	}
	c.out = append(c.out, f)
	return &c.out[len(c.out)-1]
}

// pod diagnoses one pod (or a workload's template standing in for one). named says the user
// asked for this pod, so one that does not ask for injection is worth a word.
func (d *Doctor) pod(ctx context.Context, p *corev1.Pod, named, template bool) []Finding {
	c := &podCheck{d: d, pod: p, obj: "Pod " + p.Namespace + "/" + p.Name, template: template}
	if template {
		c.obj = p.Name + " in namespace " + p.Namespace
	}
	if !asksInjection(p.Annotations) {
		if named {
			c.add(Finding{Severity: Info, Code: CodeNotInjectable,
				Message: fmt.Sprintf("the pod does not ask for Vault Agent injection (%s is %q)", annInject, p.Annotations[annInject]),
				Fix:     fmt.Sprintf(`set the annotation %s: "true" on the pod template, with %s`, annInject, annRole)})
		}
		return c.out
	}
	injected := hasContainer(p, initContainer) || hasContainer(p, sidecarContainer)
	if !injected {
		d.injection(ctx, c)
		return c.out
	}
	c.tokenMount()
	c.readLogs(ctx)
	role := p.Annotations[annRole]
	if role == "" {
		c.add(Finding{Severity: Error, Code: CodeNoRole, Message: "the pod names no Vault role, so the agent cannot log in",
			Evidence: []string{annRole + " is not set"}, Fix: fmt.Sprintf(`add %s: "<role>" naming a role of the auth mount`, annRole)})
	} else if d.Vault != nil {
		d.vaultChecks(ctx, c, role)
	}
	d.networkPolicy(ctx, c)
	c.jobSidecar()
	c.rotation()
	c.unexplainedLogs()
	return c.out
}

func hasContainer(p *corev1.Pod, name string) bool {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for _, ctr := range cs {
			if ctr.Name == name {
				return true
			}
		}
	}
	return false
}

func container(p *corev1.Pod, name string) *corev1.Container {
	for _, cs := range [][]corev1.Container{p.Spec.InitContainers, p.Spec.Containers} {
		for i := range cs {
			if cs[i].Name == name {
				return &cs[i]
			}
		}
	}
	return nil
}

// authMount is the auth mount the agent logs in at, without "auth/".
func (c *podCheck) authMount() string {
	if ap := strings.Trim(c.pod.Annotations[annAuthPath], "/"); ap != "" {
		return strings.TrimPrefix(ap, "auth/")
	}
	if m := strings.Trim(c.d.Config.KubernetesAuth.Path, "/"); m != "" {
		return m
	}
	return "kubernetes"
}

func (c *podCheck) serviceAccount() string {
	if sa := c.pod.Spec.ServiceAccountName; sa != "" {
		return sa
	}
	return "default"
}

// tokenVolume is the volume the agent reads its ServiceAccount token from, or nil.
func (c *podCheck) tokenVolume() *corev1.Volume {
	name := c.pod.Annotations[annTokenVolume]
	if name == "" {
		ctr := container(c.pod, initContainer)
		if ctr == nil {
			ctr = container(c.pod, sidecarContainer)
		}
		if ctr != nil {
			for _, m := range ctr.VolumeMounts {
				if strings.TrimSuffix(m.MountPath, "/") == tokenMountPath {
					name = m.Name
				}
			}
		}
	}
	for i := range c.pod.Spec.Volumes {
		if c.pod.Spec.Volumes[i].Name == name && name != "" {
			return &c.pod.Spec.Volumes[i]
		}
	}
	return nil
}

// tokenMount: without a ServiceAccount token the agent has nothing to log in with (cause 8).
func (c *podCheck) tokenMount() {
	if c.tokenVolume() != nil {
		return
	}
	ev := []string{"no volume of the pod is mounted at " + tokenMountPath + " in " + initContainer}
	if a := c.pod.Spec.AutomountServiceAccountToken; a != nil && !*a {
		ev = append(ev, "spec.automountServiceAccountToken: false")
	}
	c.add(Finding{Severity: Error, Code: CodeNoTokenMount,
		Message:  "the agent has no ServiceAccount token to log in with",
		Evidence: ev,
		Fix:      "remove automountServiceAccountToken: false from the pod (or its ServiceAccount), or mount a projected token and name it in " + annTokenVolume})
}

// paths are the Vault paths the agent reads, found as vaultctl check finds them in manifests.
func (c *podCheck) paths() []check.InjectedPath {
	return check.InjectedPaths(c.pod.Annotations)
}

// jobSidecar: a Job's pod whose sidecar agent keeps running never completes (cause 9).
func (c *podCheck) jobSidecar() {
	if !ownedBy(c.pod, "Job") || !hasContainer(c.pod, sidecarContainer) {
		return
	}
	ev := []string{annPrePopulateOnly + " is not \"true\", so the injector added the " + sidecarContainer + " sidecar"}
	appDone := len(c.pod.Status.ContainerStatuses) > 0
	for _, s := range c.pod.Status.ContainerStatuses {
		switch {
		case s.Name == sidecarContainer && s.State.Running != nil:
			ev = append(ev, sidecarContainer+" is still running")
		case s.Name != sidecarContainer && s.State.Terminated == nil:
			appDone = false
		}
	}
	msg := "the Job's pod runs the vault-agent sidecar, which never exits, so the Job does not complete"
	if appDone {
		msg = "the Job's containers finished but the vault-agent sidecar keeps the pod running, so the Job never completes"
	}
	c.add(Finding{Severity: Error, Code: CodeJobSidecar, Message: msg, Evidence: ev,
		Fix: fmt.Sprintf(`annotate the Job's pod template with %s: "true" (the agent renders once, as an init container)`, annPrePopulateOnly)})
}

func ownedBy(p *corev1.Pod, kind string) bool {
	for _, o := range p.OwnerReferences {
		if o.Kind == kind {
			return true
		}
	}
	return false
}

// rotation: what keeps a rotated secret from reaching the application (cause 10).
func (c *podCheck) rotation() {
	if ownedBy(c.pod, "Job") {
		return
	}
	if truthy(c.pod.Annotations[annPrePopulateOnly]) {
		c.add(Finding{Severity: Warning, Code: CodeRenderedOnce,
			Message:  "the secrets are rendered once at start (no sidecar agent): a rotated or renewed secret never reaches this long-running pod",
			Evidence: []string{annPrePopulateOnly + ": \"true\" on a pod that no Job owns"},
			Fix:      "remove " + annPrePopulateOnly + " so the vault-agent sidecar keeps the files fresh, or restart the pods after every rotation"})
		return
	}
	var missing []string
	for k := range c.pod.Annotations {
		name, ok := strings.CutPrefix(k, annSecretPrefix)
		if !ok {
			continue
		}
		if _, ok := c.pod.Annotations[annCommandPrefix+name]; !ok {
			missing = append(missing, name)
		}
	}
	if len(missing) > 0 {
		sort.Strings(missing)
		c.add(Finding{Severity: Info, Code: CodeNoReloadCommand,
			Message:  "the sidecar re-renders these files when the secret changes, but runs no command afterwards: an application that reads them only at start keeps the old values",
			Evidence: []string{"no " + annCommandPrefix + "NAME for: " + strings.Join(missing, ", ")},
			Fix:      fmt.Sprintf(`if the application does not re-read the files, add %s%s: "<reload command>" (for example "kill -HUP 1")`, annCommandPrefix, missing[0])})
	}
}
