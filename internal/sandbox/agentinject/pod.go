package agentinject

import (
	"encoding/base64"
	"errors"
	"fmt"
	"io/fs"
	"slices"
	"strconv"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Names of the injected containers and volumes (vault-k8s container_init_sidecar.go,
// container_sidecar.go, container_volume.go).
const (
	InitContainerName    = "vault-agent-init"
	SidecarContainerName = "vault-agent"

	SecretsVolumeName     = "vault-secrets" // custom paths: vault-secrets-custom-0, -1, ...
	HomeInitVolumeName    = "home-init"
	HomeSidecarVolumeName = "home-sidecar"
	CacheVolumeName       = "vault-agent-cache"
	TLSVolumeName         = "vault-tls-secrets"

	// DefaultTokenMount is where the agent containers mount a token volume named by
	// agent-service-account-token-volume-name that no application container mounts.
	DefaultTokenMount = "/var/run/secrets/vault.hashicorp.com/serviceaccount"

	// agentScript is the agent containers' command after /bin/sh -ec (container_sidecar.go
	// DefaultContainerArg): the configuration is written from VAULT_CONFIG into the home volume.
	agentScript = "echo ${VAULT_CONFIG?} | base64 -d > " + ConfigFile + " && vault agent -config=" + ConfigFile
)

// defaultFileMode is the mode the agent gives a file it creates when the template sets no perms
// (consul-template renderer.DefaultFilePerms). vault-k8s sets no default of its own: without
// agent-inject-perms the template stanza has no perms at all.
const defaultFileMode fs.FileMode = 0o644

// File is one file the agent renders.
type File struct {
	Secret string      // the secret's Name
	Path   string      // the template's destination, in the pod's filesystem
	Mode   fs.FileMode // the mode the agent creates it with
}

// Files lists what the agents render, one file per secret in Secrets order. Two secrets may share
// a destination (db and DB with preserve-secret-case); vault-k8s lets them, and so does Files.
//
// The mode is the agent's reading of agent-inject-perms, which vault-k8s passes on unchecked:
// consul-template's mapstructure hook (config.StringToFileModeFunc) reads the string as octal with
// strconv.ParseUint(s, 8, 12), so "0400" and "400" are 0400 and "0o400" or "rw" fail. A mode of 0
// means "keep the existing file's, else 0644" (renderer.AtomicWrite), and only the permission bits
// survive os.Chmod of a raw 04000-style value. A value the agent would refuse is an error here:
// the agent would exit with a configuration error instead of rendering.
func (a *Agent) Files() ([]File, error) {
	out := make([]File, 0, len(a.Secrets))
	for _, s := range a.Secrets {
		mode := defaultFileMode
		if s.Perms != "" {
			v, err := strconv.ParseUint(s.Perms, 8, 12)
			if err != nil {
				return nil, fmt.Errorf("secret %q: %s%s=%q: the agent refuses the template's perms: %w", s.Name, annPerms, s.RawName, s.Perms, err)
			}
			if perm := fs.FileMode(v) & fs.ModePerm; perm != 0 {
				mode = perm
			}
		}
		out = append(out, File{Secret: s.Name, Path: s.Destination(), Mode: mode})
	}
	return out, nil
}

// Volumes are the memory volumes the rendered files live in, each with its mount path (vault-k8s
// container_volume.go ContainerVolumes, ContainerVolumeMounts, getUniqueMountPaths): always
// vault-secrets at the pod's secret-volume-path, then one vault-secrets-custom-N per distinct
// per-secret mount path other than that one, numbered in Secrets order. The agent containers and
// the application containers that see the secrets (SeesSecrets) mount all of them.
func (a *Agent) Volumes() []corev1.VolumeMount {
	out := []corev1.VolumeMount{{Name: SecretsVolumeName, MountPath: a.SecretVolumePath}}
	var custom []string
	for _, s := range a.Secrets {
		if s.MountPath != a.SecretVolumePath && !slices.Contains(custom, s.MountPath) {
			custom = append(custom, s.MountPath)
		}
	}
	for i, p := range custom {
		out = append(out, corev1.VolumeMount{Name: fmt.Sprintf("%s-custom-%d", SecretsVolumeName, i), MountPath: p})
	}
	return out
}

// AgentMounts are the init container's (init true) or the sidecar's volume mounts, in vault-k8s's
// order (container_init_sidecar.go ContainerInitSidecar, container_sidecar.go ContainerSidecar):
// its own home, the ServiceAccount token (read-only), the secrets volumes, and the TLS Secret and
// persistent cache when set. The init container lists its home first, the sidecar the token.
func (a *Agent) AgentMounts(init bool) []corev1.VolumeMount {
	token := corev1.VolumeMount{Name: a.Token.Name, MountPath: a.Token.MountPath, ReadOnly: true}
	var out []corev1.VolumeMount
	if init {
		out = []corev1.VolumeMount{{Name: HomeInitVolumeName, MountPath: HomeDir}, token}
	} else {
		out = []corev1.VolumeMount{token, {Name: HomeSidecarVolumeName, MountPath: HomeDir}}
	}
	out = append(out, a.Volumes()...)
	if a.TLSSecret != "" {
		out = append(out, corev1.VolumeMount{Name: TLSVolumeName, MountPath: TLSDir, ReadOnly: true})
	}
	if a.CachePersist {
		out = append(out, corev1.VolumeMount{Name: CacheVolumeName, MountPath: CacheDir})
	}
	return out
}

// SeesSecrets reports whether a container of the pod gets the secrets volumes (vault-k8s agent.go
// Patch). An application container does when agent-inject-containers lists it (exactly: the list
// is not trimmed), or when that annotation is absent. An init container does whenever the agent
// has an init container, whatever agent-inject-containers says; without one, none does.
func (a *Agent) SeesSecrets(container string, initContainer bool) bool {
	if initContainer {
		return a.PrePopulate
	}
	return a.Containers == nil || slices.Contains(a.Containers, container)
}

// InitContainers is the pod's init container order after injection (agent.go Patch): the agent's
// init container after the pod's own, or before them with agent-init-first; absent without
// pre-populate.
func (a *Agent) InitContainers(own []string) []string {
	switch {
	case !a.PrePopulate:
		return slices.Clone(own)
	case a.InitFirst:
		return append([]string{InitContainerName}, own...)
	default:
		return append(slices.Clone(own), InitContainerName)
	}
}

// Command is the agent containers' command: /bin/sh -ec and a script that writes VAULT_CONFIG to
// ConfigFile and execs vault agent on it.
func (a *Agent) Command() []string { return []string{"/bin/sh", "-ec", agentScript} }

// Env is the agent container's environment (vault-k8s container_env.go ContainerEnvVars): the
// pod's namespace and IPs from the downward API, the tuning variables the annotations set, the
// configuration in VAULT_CONFIG (base64 of Config(init)) and the injector's CA in
// VAULT_CACERT_BYTES (decoded first when it is base64).
func (a *Agent) Env(init bool) ([]corev1.EnvVar, error) {
	field := func(name, path string) corev1.EnvVar {
		return corev1.EnvVar{Name: name, ValueFrom: &corev1.EnvVarSource{FieldRef: &corev1.ObjectFieldSelector{FieldPath: path}}}
	}
	env := []corev1.EnvVar{
		field("NAMESPACE", "metadata.namespace"),
		field("HOST_IP", "status.hostIP"),
		field("POD_IP", "status.podIP"),
	}
	for _, e := range []corev1.EnvVar{
		{Name: "GOMAXPROCS", Value: a.GoMaxProcs},
		{Name: "VAULT_CLIENT_TIMEOUT", Value: a.ClientTimeout},
		{Name: "VAULT_MAX_RETRIES", Value: a.ClientMaxRetries},
		{Name: "VAULT_LOG_LEVEL", Value: a.LogLevel},
		{Name: "VAULT_LOG_FORMAT", Value: a.LogFormat},
		{Name: "HTTPS_PROXY", Value: a.ProxyAddress},
	} {
		if e.Value != "" {
			env = append(env, e)
		}
	}
	cfg, err := a.Config(init)
	if err != nil {
		return nil, err
	}
	env = append(env, corev1.EnvVar{Name: "VAULT_CONFIG", Value: base64.StdEncoding.EncodeToString(cfg)})
	if a.CACertBytes != "" {
		// container_env.go decodeIfBase64: standard base64 that decodes is replaced by its bytes.
		ca := a.CACertBytes
		if b, err := base64.StdEncoding.DecodeString(ca); err == nil {
			ca = string(b)
		}
		env = append(env, corev1.EnvVar{Name: "VAULT_CACERT_BYTES", Value: ca})
	}
	return env, nil
}

// LoginPath is the Vault path the agent logs in at. vault-k8s passes auth-path to the agent
// unchanged (annotations.go Init copies it, agent.go Validate rejects only ""); the agent trims
// one trailing "/" when it loads the configuration (Vault command/agent/config parseMethod) and
// writes to mount_path + "/login" (command/agentproxyshared/auth/kubernetes). A path without the
// "auth/" prefix is not completed either: "kubernetes" logs in at kubernetes/login and fails.
func (a *Agent) LoginPath() string { return strings.TrimSuffix(a.AuthPath, "/") + "/login" }

// ServiceAccountToken finds the pod's ServiceAccount token volume as vault-k8s does (agent.go
// serviceaccount, getProjectedTokenPath, getTokenPathFromProjectedVolume). With
// agent-service-account-token-volume-name, that volume: at the path the first application
// container mounts it, else at DefaultTokenMount, with the token file its projected
// serviceAccountToken source names. Without it, the first application container mount whose path
// contains "serviceaccount", token file "token". Init containers are not searched.
func ServiceAccountToken(pod *corev1.Pod) (TokenVolume, error) {
	if name := pod.Annotations[annSATokenVolume]; name != "" {
		for _, c := range pod.Spec.Containers {
			for _, m := range c.VolumeMounts {
				if m.Name != name {
					continue
				}
				v := findVolume(pod, name)
				if v == nil {
					return TokenVolume{}, fmt.Errorf("failed to find volume %q in Pod %q volumes", name, pod.Name)
				}
				file, err := projectedTokenFile(v)
				if err != nil {
					return TokenVolume{}, err
				}
				return TokenVolume{Name: m.Name, MountPath: m.MountPath, TokenPath: file}, nil
			}
		}
		if v := findVolume(pod, name); v != nil {
			file, err := projectedTokenFile(v)
			if err != nil {
				return TokenVolume{}, err
			}
			return TokenVolume{Name: v.Name, MountPath: DefaultTokenMount, TokenPath: file}, nil
		}
		return TokenVolume{}, fmt.Errorf("failed to find service account volume %q", name)
	}
	for _, c := range pod.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if strings.Contains(m.MountPath, "serviceaccount") {
				return TokenVolume{Name: m.Name, MountPath: m.MountPath, TokenPath: "token"}, nil
			}
		}
	}
	return TokenVolume{}, errors.New("failed to find service account volume mount")
}

func findVolume(pod *corev1.Pod, name string) *corev1.Volume {
	for i := range pod.Spec.Volumes {
		if pod.Spec.Volumes[i].Name == name {
			return &pod.Spec.Volumes[i]
		}
	}
	return nil
}

// projectedTokenFile is the path of the first serviceAccountToken source of a projected volume.
func projectedTokenFile(v *corev1.Volume) (string, error) {
	if v.Projected != nil {
		for _, src := range v.Projected.Sources {
			if src.ServiceAccountToken != nil && src.ServiceAccountToken.Path != "" {
				return src.ServiceAccountToken.Path, nil
			}
		}
	}
	return "", fmt.Errorf("failed to find tokenPath for projected volume %q", v.Name)
}

// ParsePod is Parse for a whole pod: the namespace defaults to the pod's, the token volume is
// found in its spec (ServiceAccountToken, reported where vault-k8s reports it),
// agent-inject-containers defaults to its containers, and the checks vault-k8s makes against the
// spec are made (agent-run-as-same-user, agent-share-process-namespace).
//
// vault-k8s's ShouldInject also skips a pod whose phase is set and not Pending, since it injects
// at admission, before any phase. ParsePod does not look at the phase: a runner acts on pods that
// already exist, and one that is Running because of that runner still wants its agent.
func ParsePod(pod *corev1.Pod, d Defaults) (*Agent, error) {
	if d.Namespace == "" {
		d.Namespace = pod.Namespace
	}
	return parse(pod.Annotations, d, pod)
}

// checkRunAsSame is annotations.go runAsSameID's check of the first application container.
func checkRunAsSame(pod *corev1.Pod) error {
	switch {
	case len(pod.Spec.Containers) == 0:
		return errors.New("No containers found in Pod Spec")
	case pod.Spec.Containers[0].SecurityContext == nil:
		return errors.New("No SecurityContext found for Container 0")
	case pod.Spec.Containers[0].SecurityContext.RunAsUser == nil:
		return errors.New("RunAsUser is nil for Container 0's SecurityContext")
	case *pod.Spec.Containers[0].SecurityContext.RunAsUser == 0:
		return errors.New("container not allowed to run as root")
	}
	return nil
}
