package agentinject

import (
	"fmt"
	"strings"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/api/resource"
)

// PatchOperation is one RFC 6902 operation of an admission response's JSONPatch.
type PatchOperation struct {
	Op    string `json:"op"`
	Path  string `json:"path"`
	Value any    `json:"value,omitempty"`
}

// EscapePointer escapes a key for a JSON pointer (RFC 6901): "~" and "/".
func EscapePointer(key string) string {
	return strings.NewReplacer("~", "~0", "/", "~1").Replace(key)
}

// InitContainer is the vault-agent-init container (vault-k8s container_init_sidecar.go
// ContainerInitSidecar): AgentMounts(true), Env(true), /bin/sh -ec with the script in args.
func (a *Agent) InitContainer() (corev1.Container, error) { return a.agentContainer(true) }

// SidecarContainer is the vault-agent container (container_sidecar.go ContainerSidecar): as the
// init container with the sidecar's mounts and configuration, plus a lifecycle that is empty
// unless agent-revoke-on-shutdown asks for a preStop revoke.
func (a *Agent) SidecarContainer() (corev1.Container, error) { return a.agentContainer(false) }

func (a *Agent) agentContainer(init bool) (corev1.Container, error) {
	env, err := a.Env(init)
	if err != nil {
		return corev1.Container{}, err
	}
	res, err := a.resources()
	if err != nil {
		return corev1.Container{}, err
	}
	// Mounts as vault-k8s sets them on the containers: the secrets volumes read-write.
	c := corev1.Container{
		Name:         InitContainerName,
		Image:        a.Image,
		Env:          env,
		Resources:    res,
		VolumeMounts: a.AgentMounts(init),
		Command:      []string{"/bin/sh", "-ec"},
		Args:         []string{agentScript},
	}
	if !init {
		c.Name = SidecarContainerName
		// ContainerSidecar always sets a Lifecycle, empty without revoke-on-shutdown.
		c.Lifecycle = &corev1.Lifecycle{}
		if a.RevokeOnShutdown {
			c.Lifecycle.PreStop = &corev1.LifecycleHandler{Exec: &corev1.ExecAction{Command: []string{
				"/bin/sh", "-c", fmt.Sprintf("/bin/sleep %d && /bin/vault token revoke %s", a.RevokeGrace, strings.Join(a.cliFlags(), " ")),
			}}}
		}
	}
	if a.SetSecurityContext {
		c.SecurityContext = a.securityContext()
	}
	return c, nil
}

// cliFlags are the vault CLI flags of the preStop revoke (agent.go vaultCliFlags, then -self).
func (a *Agent) cliFlags() []string {
	flags := []string{"-address=" + a.Address}
	for _, f := range []struct{ name, value string }{{"ca-cert", a.CACert}, {"client-cert", a.ClientCert}, {"client-key", a.ClientKey}} {
		if f.value != "" {
			flags = append(flags, "-"+f.name+"="+f.value)
		}
	}
	return append(flags, "-self")
}

// resources is container_sidecar.go parseResources: limits and requests from the (defaulted)
// annotations; an empty one is left out, and both maps are present even when empty.
func (a *Agent) resources() (corev1.ResourceRequirements, error) {
	list := func(cpu, mem, eph string) (corev1.ResourceList, error) {
		out := corev1.ResourceList{}
		for _, r := range []struct {
			name  corev1.ResourceName
			value string
		}{{corev1.ResourceCPU, cpu}, {corev1.ResourceMemory, mem}, {corev1.ResourceEphemeralStorage, eph}} {
			if r.value == "" {
				continue
			}
			q, err := resource.ParseQuantity(r.value)
			if err != nil {
				return nil, err
			}
			out[r.name] = q
		}
		return out, nil
	}
	limits, err := list(a.LimitsCPU, a.LimitsMem, a.LimitsEphemeral)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	requests, err := list(a.RequestsCPU, a.RequestsMem, a.RequestsEphemeral)
	if err != nil {
		return corev1.ResourceRequirements{}, err
	}
	return corev1.ResourceRequirements{Limits: limits, Requests: requests}, nil
}

// securityContext is container_sidecar.go securityContext: the run-as ids, non-root unless one
// of them is 0, a read-only root filesystem, every capability dropped, no privilege escalation.
func (a *Agent) securityContext() *corev1.SecurityContext {
	nonRoot := a.RunAsUser != 0 && a.RunAsGroup != 0
	f := false
	t := true
	return &corev1.SecurityContext{
		RunAsUser:                &a.RunAsUser,
		RunAsGroup:               &a.RunAsGroup,
		RunAsNonRoot:             &nonRoot,
		ReadOnlyRootFilesystem:   &t,
		Capabilities:             &corev1.Capabilities{Drop: []corev1.Capability{"ALL"}},
		AllowPrivilegeEscalation: &f,
	}
}

// PodVolumes are the volumes the injector adds, in the order agent.go Patch adds them.
func (a *Agent) PodVolumes() []corev1.Volume {
	var out []corev1.Volume
	for _, group := range a.volumeGroups() {
		out = append(out, group...)
	}
	return out
}

// volumeGroups are PodVolumes as agent.go Patch adds them, one addVolumes call each: the agents'
// homes (home-init with an init container, home-sidecar with a sidecar; container_volume.go
// ContainerTokenVolume), the secrets volumes (Volumes), the tls-secret Secret, the persistent
// cache. Every emptyDir is medium Memory.
func (a *Agent) volumeGroups() [][]corev1.Volume {
	mem := func(name string) corev1.Volume {
		return corev1.Volume{Name: name, VolumeSource: corev1.VolumeSource{EmptyDir: &corev1.EmptyDirVolumeSource{Medium: corev1.StorageMediumMemory}}}
	}
	var home, secrets []corev1.Volume
	if a.PrePopulate {
		home = append(home, mem(HomeInitVolumeName))
	}
	if !a.PrePopulateOnly {
		home = append(home, mem(HomeSidecarVolumeName))
	}
	for _, v := range a.Volumes() {
		secrets = append(secrets, mem(v.Name))
	}
	groups := [][]corev1.Volume{home, secrets}
	if a.TLSSecret != "" {
		groups = append(groups, []corev1.Volume{{Name: TLSVolumeName, VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: a.TLSSecret}}}})
	}
	if a.CachePersist {
		groups = append(groups, []corev1.Volume{mem(CacheVolumeName)})
	}
	return groups
}

// Patch is the JSONPatch vault-k8s's admission response carries for pod (agent.go Patch, patch.go),
// operation for operation: the volumes; the secrets volumes' mounts on each application container
// agent-inject-containers names; the init container (after the pod's own, or first with
// agent-init-first: then the pod's init containers are removed and added back behind it) and the
// secrets mounts on every other init container; shareProcessNamespace; the sidecar (unless
// pre-populate-only); agent-inject-status: injected. pod is the pod as admitted, a is
// ParsePod(pod, ...). Unsupported annotations have no effect on it.
//
// patch.go's helpers decide "first add creates the array" from the pod as admitted, not from what
// earlier operations added, and so does Patch: for a pod with no volumes at all the secrets volumes
// would replace the home volumes. vault-k8s never meets such a pod (it needs a token volume), nor
// does the sandbox, so the quirk is kept rather than fixed.
func (a *Agent) Patch(pod *corev1.Pod) ([]PatchOperation, error) {
	var ops []PatchOperation
	add := func(path string, value any) { ops = append(ops, PatchOperation{Op: "add", Path: path, Value: value}) }
	// addAll appends items to the array at base, which holds have items in the admitted pod.
	addAll := func(base string, have int, items []any, asArray func(any) any) {
		for i, v := range items {
			if have == 0 && i == 0 {
				add(base, asArray(v))
				continue
			}
			add(base+"/-", v)
		}
	}
	oneVolume := func(v any) any { return []corev1.Volume{v.(corev1.Volume)} }
	oneMount := func(v any) any { return []corev1.VolumeMount{v.(corev1.VolumeMount)} }
	oneContainer := func(v any) any { return []corev1.Container{v.(corev1.Container)} }

	for _, group := range a.volumeGroups() {
		addAll("/spec/volumes", len(pod.Spec.Volumes), toAny(group), oneVolume)
	}

	secretMounts := toAny(a.Volumes())
	for i, c := range pod.Spec.Containers {
		if a.SeesSecrets(c.Name, false) {
			addAll(fmt.Sprintf("/spec/containers/%d/volumeMounts", i), len(c.VolumeMounts), secretMounts, oneMount)
		}
	}

	if a.PrePopulate {
		initC, err := a.InitContainer()
		if err != nil {
			return nil, err
		}
		inits := pod.Spec.InitContainers
		if a.InitFirst {
			if len(pod.Spec.InitContainers) > 0 {
				ops = append(ops, PatchOperation{Op: "remove", Path: "/spec/initContainers"})
			}
			inits = append([]corev1.Container{initC}, pod.Spec.InitContainers...)
			addAll("/spec/initContainers", 0, toAny(inits), oneContainer)
		} else {
			addAll("/spec/initContainers", len(pod.Spec.InitContainers), toAny([]corev1.Container{initC}), oneContainer)
		}
		for i, c := range inits {
			if c.Name == InitContainerName {
				continue
			}
			addAll(fmt.Sprintf("/spec/initContainers/%d/volumeMounts", i), len(c.VolumeMounts), secretMounts, oneMount)
		}
		if a.ShareProcessNamespace != nil {
			add("/spec/shareProcessNamespace", *a.ShareProcessNamespace)
		}
	}

	if !a.PrePopulateOnly {
		side, err := a.SidecarContainer()
		if err != nil {
			return nil, err
		}
		addAll("/spec/containers", len(pod.Spec.Containers), toAny([]corev1.Container{side}), oneContainer)
	}

	// Init has filled the pod's annotations with defaults by now, so the map is never empty and
	// the status is one added key.
	add("/metadata/annotations/"+EscapePointer(AnnotationStatus), "injected")
	return ops, nil
}

func toAny[T any](s []T) []any {
	out := make([]any, len(s))
	for i, v := range s {
		out[i] = v
	}
	return out
}
