package migrate

import (
	"crypto/sha256"
	"encoding/hex"
	"errors"
	"fmt"
	"io/fs"
	"maps"
	"path"
	"slices"
	"sort"
	"strings"

	corev1 "k8s.io/api/core/v1"
)

// Source is a migrated Secret as a workload's rewrite needs it.
type Source struct {
	Secret string
	KVPath string // logical, with mount: "secret/team-a/db"
	Mount  string // the KV v2 mount KVPath is on: "secret"
	Keys   []string
	Binary map[string]bool // keys stored base64 in KV because their value is not valid UTF-8
}

// RewriteInput is one workload to switch from Secrets to the Vault Agent Injector.
type RewriteInput struct {
	Workload    WorkloadID
	Template    corev1.PodTemplateSpec // the workload's pod template (a bare Pod: its metadata+spec)
	Role        string
	AuthPath    string              // "auth/kubernetes"
	Sources     map[string]Source   // migrated Secrets by name; refs to others stay as they are
	Entrypoints map[string][]string // container name -> entrypoint argv given by the user (flag/config)
	Job         bool                // Job or CronJob: agent-pre-populate-only
}

// RewriteResult is the rewritten pod template and what the plan says about it.
//
// Action is WorkloadMigrate when the template was rewritten, WorkloadManual when some reader
// cannot be reproduced (Manual says why; Template is then the input unchanged and nothing else
// is set, so a workload is never half migrated), and WorkloadSkip when the template reads no
// migrated Secret (unchanged).
type RewriteResult struct {
	Template corev1.PodTemplateSpec
	Action   WorkloadAction
	Manual   []string // per container: the exact reason and the flag/config key to fix it
	Changes  []string
	Warnings []string
	Files    []InjectedFile // what the agent will render, sorted by Path
}

// InjectedFile is one file the agent renders into the pod. For a Secret volume's file, Secret
// and Key say where its bytes come from; for an env file (Env), Secret lists the Secrets it
// reads, comma-separated, and Key is empty.
type InjectedFile struct {
	Path   string
	Mode   fs.FileMode
	Secret string
	Key    string
	Env    bool
}

// Injector annotations and defaults (vault-k8s agent-inject/agent/annotations.go).
const (
	annPrefix          = "vault.hashicorp.com/"
	annInject          = annPrefix + "agent-inject"
	annRole            = annPrefix + "role"
	annAuthPath        = annPrefix + "auth-path"
	annContainers      = annPrefix + "agent-inject-containers"
	annInitFirst       = annPrefix + "agent-init-first"
	annPrePopulateOnly = annPrefix + "agent-pre-populate-only"
	annSecret          = annPrefix + "agent-inject-secret-"
	annTemplate        = annPrefix + "agent-inject-template-"
	annFile            = annPrefix + "agent-inject-file-"
	annPerms           = annPrefix + "agent-inject-perms-"
	annVolumePath      = annPrefix + "secret-volume-path-"

	defaultAuthPath = "auth/kubernetes"
	// injectorSecretsDir is the injector's default secret-volume-path, where the env files go.
	injectorSecretsDir = "/vault/secrets"
	// agentUser is who the agent writes files as (vault-k8s defaults agent-run-as-user 100,
	// agent-run-as-group 1000).
	agentUser = "uid 100, gid 1000"
	// The kubelet's defaults for Secret and projected volumes.
	defaultVolumeMode fs.FileMode = 0o644
	// fsGroupReadBits are what the kubelet adds to a read-only volume's files when the pod sets
	// fsGroup (volume.SetVolumeOwnership): the container saw mode|0440.
	fsGroupReadBits fs.FileMode = 0o440
	// envFileMode is consul-template's mode for a file whose template sets no perms.
	envFileMode fs.FileMode = 0o644
	// maxSecretName keeps agent-inject-template-NAME within an annotation name's 63 characters.
	maxSecretName = 63 - len("agent-inject-template-")
)

// Rewrite turns a pod template that reads migrated Secrets into one that reads them through
// the Vault Agent Injector, so that each container sees the same environment and the same file
// bytes and modes. It never reads a value: templates fetch them from Vault when the pod starts.
// An error means the input is inconsistent (a Source whose KV path is not under its mount, no
// role); what the workload itself makes impossible is a manual result.
func Rewrite(in RewriteInput) (RewriteResult, error) {
	r := &rewriter{in: in, tmpl: *in.Template.DeepCopy()}
	if err := r.run(); err != nil {
		return RewriteResult{}, err
	}
	unchanged := *in.Template.DeepCopy()
	switch {
	case len(r.manual) > 0:
		return RewriteResult{Template: unchanged, Action: WorkloadManual, Manual: r.manual}, nil
	case !r.touched:
		return RewriteResult{Template: unchanged, Action: WorkloadSkip}, nil
	}
	sort.Slice(r.files, func(i, j int) bool { return r.files[i].Path < r.files[j].Path })
	return RewriteResult{
		Template: r.tmpl,
		Action:   WorkloadMigrate,
		Changes:  r.changes,
		Warnings: r.warnings,
		Files:    r.files,
	}, nil
}

// rewriter holds one Rewrite's state.
type rewriter struct {
	in   RewriteInput
	tmpl corev1.PodTemplateSpec

	touched  bool // the template reads a migrated Secret
	manual   []string
	changes  []string
	warnings []string
	files    []InjectedFile

	// secrets are the injector secrets to annotate, by name, in the order they were added.
	secrets []injectedSecret
	names   map[string]string // injector name -> what it was derived from, to catch collisions
	// mountDirs are the directories the migrated volume files are rendered in.
	mountDirs []string
	// had is, per container, the rendered directories and env files it reads; the injector gives
	// every container that sees secrets all of them, and what it did not have is warned about.
	had map[string][]string
	// initReads: an init container reads a migrated Secret, so the agent's init container must
	// run before the pod's own.
	initReads bool
}

// injectedSecret is one agent-inject-secret-NAME and its per-secret annotations.
type injectedSecret struct {
	Name, ReadPath, Template string
	Dir, File                string // for a volume file: secret-volume-path-NAME and agent-inject-file-NAME
	Perms                    fs.FileMode
}

// volumeFile is one file of a migrated Secret (or projected) volume.
type volumeFile struct {
	Rel    string // path inside the volume
	Secret string
	Key    string
	Mode   fs.FileMode
}

// mountUse is one container's mount of a migrated volume.
type mountUse struct {
	Container string
	Init      bool
	Volume    string
	Dir       string
}

func (r *rewriter) run() error {
	if err := r.checkSources(); err != nil {
		return err
	}
	if !r.readsMigrated() {
		return nil
	}
	r.touched = true
	if r.in.Role == "" {
		return fmt.Errorf("%s: no Vault role to annotate; the plan must name the workload's Kubernetes-auth role", r.in.Workload)
	}
	r.names = map[string]string{}
	r.had = map[string][]string{}
	if existing := r.injectorAnnotations(); len(existing) > 0 {
		r.manual = append(r.manual, fmt.Sprintf("the pod template already has Vault Agent Injector annotations (%s): merging vaultctl's secrets with them is not automatic; move those secrets into the template by hand or remove the annotations", strings.Join(existing, ", ")))
	}
	if isFalse(r.tmpl.Spec.AutomountServiceAccountToken) && !r.mountsServiceAccount() {
		r.manual = append(r.manual, "automountServiceAccountToken is false and no container mounts a ServiceAccount token, and the injector refuses a pod without one (\"failed to find service account volume mount\"); set automountServiceAccountToken: true or mount a projected token and name it with vault.hashicorp.com/agent-service-account-token-volume-name")
	}
	if err := r.volumes(); err != nil {
		return err
	}
	if err := r.env(); err != nil {
		return err
	}
	if len(r.manual) > 0 {
		return nil
	}
	r.checkSharedMounts()
	r.checkDestinations()
	if len(r.manual) > 0 {
		return nil
	}
	r.annotate()
	return nil
}

// checkSources rejects a Source the templates could not read from.
func (r *rewriter) checkSources() error {
	for _, name := range slices.Sorted(maps.Keys(r.in.Sources)) {
		src := r.in.Sources[name]
		if src.Secret != "" && src.Secret != name {
			return fmt.Errorf("Sources[%q] describes Secret %q; the map must be keyed by the Source's own name", name, src.Secret)
		}
		if _, err := kvReadPath(withName(src, name)); err != nil {
			return err
		}
	}
	return nil
}

func withName(src Source, name string) Source {
	src.Secret = name
	return src
}

// source returns the migrated Secret of that name.
func (r *rewriter) source(name string) (Source, bool) {
	src, ok := r.in.Sources[name]
	return withName(src, name), ok
}

// readsMigrated reports whether any container or volume of the template reads a migrated
// Secret (image pull Secrets are the kubelet's and are not rewritten).
func (r *rewriter) readsMigrated() bool {
	for _, v := range r.tmpl.Spec.Volumes {
		if len(r.volumeSecrets(v)) > 0 {
			return true
		}
	}
	for _, c := range r.allContainers() {
		for _, e := range c.Container.EnvFrom {
			if e.SecretRef != nil && r.migrated(e.SecretRef.Name) {
				return true
			}
		}
		for _, e := range c.Container.Env {
			if ref := secretKeyRef(e); ref != nil && r.migrated(ref.Name) {
				return true
			}
		}
	}
	return false
}

func (r *rewriter) migrated(secret string) bool {
	_, ok := r.in.Sources[secret]
	return ok
}

// volumeSecrets lists the migrated Secrets a volume reads.
func (r *rewriter) volumeSecrets(v corev1.Volume) []string {
	var out []string
	if v.Secret != nil && r.migrated(v.Secret.SecretName) {
		out = append(out, v.Secret.SecretName)
	}
	if v.Projected != nil {
		for _, s := range v.Projected.Sources {
			if s.Secret != nil && r.migrated(s.Secret.Name) {
				out = append(out, s.Secret.Name)
			}
		}
	}
	return out
}

// podContainer is a container of the template with where it sits.
type podContainer struct {
	Container *corev1.Container
	Init      bool
}

// allContainers are the init containers, then the application containers, as pointers into
// the template being rewritten.
func (r *rewriter) allContainers() []podContainer {
	var out []podContainer
	for i := range r.tmpl.Spec.InitContainers {
		out = append(out, podContainer{&r.tmpl.Spec.InitContainers[i], true})
	}
	for i := range r.tmpl.Spec.Containers {
		out = append(out, podContainer{&r.tmpl.Spec.Containers[i], false})
	}
	return out
}

func (r *rewriter) injectorAnnotations() []string {
	var out []string
	for k := range r.tmpl.Annotations {
		if strings.HasPrefix(k, annPrefix) {
			out = append(out, k)
		}
	}
	sort.Strings(out)
	return out
}

// mountsServiceAccount reports whether an application container mounts a path the injector
// takes for the ServiceAccount token (vault-k8s agent.go serviceaccount: "serviceaccount" in
// the mount path).
func (r *rewriter) mountsServiceAccount() bool {
	for _, c := range r.tmpl.Spec.Containers {
		for _, m := range c.VolumeMounts {
			if strings.Contains(m.MountPath, "serviceaccount") {
				return true
			}
		}
	}
	return false
}

// volumes turns each migrated Secret volume into injected files at the same directory, with
// the same names and modes, and removes the volume and its mounts.
func (r *rewriter) volumes() error {
	filesOf := map[string][]volumeFile{} // volume name -> its files
	var migratedVolumes []string
	for _, v := range r.tmpl.Spec.Volumes {
		if len(r.volumeSecrets(v)) == 0 {
			continue
		}
		files, reason := r.volumeFiles(v)
		if reason != "" {
			r.manual = append(r.manual, reason)
			continue
		}
		filesOf[v.Name] = files
		migratedVolumes = append(migratedVolumes, v.Name)
	}
	if len(migratedVolumes) == 0 {
		return nil
	}

	// The mounts of the migrated volumes, and which volume each directory is rendered from: the
	// injector has one volume per directory, shared by every container that sees secrets.
	var uses []mountUse
	dirVolume := map[string]string{}
	for _, pc := range r.allContainers() {
		c := pc.Container
		kept := c.VolumeMounts[:0:0]
		removed := false
		for _, m := range c.VolumeMounts {
			if !slices.Contains(migratedVolumes, m.Name) {
				kept = append(kept, m)
				continue
			}
			removed = true
			if m.SubPath != "" || m.SubPathExpr != "" {
				r.manual = append(r.manual, fmt.Sprintf("container %s mounts one path of volume %s (Secret %s) with subPath at %s: the injector renders whole directories, so a single Secret file inside a directory that holds other files cannot be reproduced; mount the whole volume at its own directory first", c.Name, m.Name, strings.Join(r.volumeSecretsByName(m.Name), ", "), m.MountPath))
				kept = append(kept, m)
				continue
			}
			dir := path.Clean(m.MountPath)
			if other, ok := dirVolume[dir]; ok && other != m.Name {
				r.manual = append(r.manual, fmt.Sprintf("volumes %s and %s are both mounted at %s (in different containers): the injector shares one directory per path between containers, so both Secrets' files would land in one directory; mount them at different paths first", other, m.Name, dir))
				continue
			}
			dirVolume[dir] = m.Name
			uses = append(uses, mountUse{Container: c.Name, Init: pc.Init, Volume: m.Name, Dir: dir})
		}
		if removed {
			c.VolumeMounts = nilIfEmptyMounts(kept)
		}
	}
	if len(r.manual) > 0 {
		return nil
	}

	// One injected file per (directory, file), in mount order.
	for _, u := range uses {
		r.had[u.Container] = appendUnique(r.had[u.Container], u.Dir)
		if u.Init {
			r.initReads = true
		}
		if slices.Contains(r.mountDirs, u.Dir) {
			continue
		}
		r.mountDirs = append(r.mountDirs, u.Dir)
		var perms []string
		for _, f := range filesOf[u.Volume] {
			src, _ := r.source(f.Secret)
			readPath, err := kvReadPath(src)
			if err != nil {
				return err
			}
			// Not "file-...": the injector would read agent-inject-template-file-NAME as a
			// template file annotation of another secret.
			name, err := r.name("vol", src.Secret+"-"+f.Key, u.Dir+"\x00"+f.Rel+"\x00"+src.Secret+"\x00"+f.Key)
			if err != nil {
				return err
			}
			r.secrets = append(r.secrets, injectedSecret{
				Name: name, ReadPath: readPath, Template: fileTemplate(readPath, src, f.Key),
				Dir: u.Dir, File: f.Rel, Perms: f.Mode,
			})
			r.files = append(r.files, InjectedFile{Path: path.Join(u.Dir, f.Rel), Mode: f.Mode, Secret: src.Secret, Key: f.Key})
			if f.Mode&0o004 == 0 {
				perms = appendUnique(perms, fmt.Sprintf("%04o", f.Mode))
			}
		}
		if len(perms) > 0 {
			r.warnings = append(r.warnings, fmt.Sprintf("files under %s have mode %s, not readable by others, and the agent writes them as %s (the group is the pod's fsGroup when it sets one) where the kubelet wrote them as root: a container running as another non-root user cannot read them; run it as that user, or set vault.hashicorp.com/agent-run-as-same-user: \"true\"", u.Dir, strings.Join(perms, ", "), agentUser))
		}
	}

	// Remove the migrated volumes; describe each.
	kept := r.tmpl.Spec.Volumes[:0:0]
	for _, v := range r.tmpl.Spec.Volumes {
		if !slices.Contains(migratedVolumes, v.Name) {
			kept = append(kept, v)
			continue
		}
		var dirs []string
		for _, u := range uses {
			if u.Volume == v.Name {
				dirs = appendUnique(dirs, u.Dir)
			}
		}
		secrets := strings.Join(r.volumeSecrets(v), ", ")
		if len(dirs) == 0 {
			r.changes = append(r.changes, fmt.Sprintf("volume %s (Secret %s) removed: no container mounts it", v.Name, secrets))
			continue
		}
		r.changes = append(r.changes, fmt.Sprintf("volume %s (Secret %s) removed: its %d file(s) are rendered by the Vault Agent at %s with the same names and modes", v.Name, secrets, len(filesOf[v.Name]), strings.Join(dirs, ", ")))
	}
	r.tmpl.Spec.Volumes = kept
	return nil
}

func (r *rewriter) volumeSecretsByName(volume string) []string {
	for _, v := range r.tmpl.Spec.Volumes {
		if v.Name == volume {
			return r.volumeSecrets(v)
		}
	}
	return nil
}

// volumeFiles lists the files the kubelet would write for a migrated volume, with the modes the
// containers saw, or the reason it cannot be reproduced.
func (r *rewriter) volumeFiles(v corev1.Volume) ([]volumeFile, string) {
	fsGroup := r.tmpl.Spec.SecurityContext != nil && r.tmpl.Spec.SecurityContext.FSGroup != nil
	mode := func(item *int32, def *int32) fs.FileMode {
		m := defaultVolumeMode
		if def != nil {
			m = fs.FileMode(*def)
		}
		if item != nil {
			m = fs.FileMode(*item)
		}
		m &= fs.ModePerm
		if fsGroup {
			m |= fsGroupReadBits
		}
		return m
	}
	var out []volumeFile
	var reason string
	add := func(secret string, items []corev1.KeyToPath, def *int32, optional bool) {
		src, _ := r.source(secret)
		if len(items) == 0 {
			for _, k := range src.Keys {
				out = append(out, volumeFile{Rel: k, Secret: secret, Key: k, Mode: mode(nil, def)})
			}
			return
		}
		for _, it := range items {
			if !slices.Contains(src.Keys, it.Key) {
				if optional {
					continue // the kubelet skips a missing key of an optional Secret
				}
				reason = fmt.Sprintf("volume %s lists key %s of Secret %s, which the Secret does not have, so its pods cannot start now; fix the volume's items first", v.Name, it.Key, secret)
				return
			}
			out = append(out, volumeFile{Rel: path.Clean(it.Path), Secret: secret, Key: it.Key, Mode: mode(it.Mode, def)})
		}
	}
	switch {
	case v.Secret != nil:
		add(v.Secret.SecretName, v.Secret.Items, v.Secret.DefaultMode, v.Secret.Optional != nil && *v.Secret.Optional)
	case v.Projected != nil:
		for _, s := range v.Projected.Sources {
			if s.Secret == nil || !r.migrated(s.Secret.Name) {
				return nil, fmt.Sprintf("projected volume %s mixes migrated Secret(s) %s with other sources: the injector's directory would cover the files those sources put beside them; split the volume so the migrated Secrets have a directory of their own", v.Name, strings.Join(r.volumeSecrets(v), ", "))
			}
		}
		for _, s := range v.Projected.Sources {
			add(s.Secret.Name, s.Secret.Items, v.Projected.DefaultMode, s.Secret.Optional != nil && *s.Secret.Optional)
		}
	}
	if reason != "" {
		return nil, reason
	}
	seen := map[string]bool{}
	for _, f := range out {
		if seen[f.Rel] {
			return nil, fmt.Sprintf("volume %s has two files at %s: which one the kubelet keeps is not something the injector can repeat; give them distinct paths first", v.Name, f.Rel)
		}
		seen[f.Rel] = true
	}
	return out, ""
}

// envOrigin is where a variable's value comes from at one point of the kubelet's evaluation.
type envOrigin struct {
	Secret, Key string // set when a migrated Secret provides it
}

// env moves every variable a container takes from a migrated Secret into an env file the
// container sources before it runs its original argv.
func (r *rewriter) env() error {
	for _, pc := range r.allContainers() {
		if err := r.containerEnv(pc); err != nil {
			return err
		}
	}
	return nil
}

func (r *rewriter) containerEnv(pc podContainer) error {
	c := pc.Container
	// The kubelet's order (kubelet_pods.go makeEnvironmentVariables): envFrom entries in order,
	// a later one overriding an earlier one, then env entries in order, each overriding what
	// came before. $(VAR) in an env value expands against what is defined at that point.
	state := map[string]envOrigin{}
	readsMigrated := false
	var manual []string
	var unknownAfter []string // envFrom sources with unknown keys after a migrated envFrom

	keptFrom := c.EnvFrom[:0:0]
	for _, e := range c.EnvFrom {
		if e.SecretRef == nil || !r.migrated(e.SecretRef.Name) {
			if readsMigrated {
				unknownAfter = append(unknownAfter, envFromName(e))
			}
			keptFrom = append(keptFrom, e)
			continue
		}
		readsMigrated = true
		src, _ := r.source(e.SecretRef.Name)
		for _, k := range src.Keys {
			state[e.Prefix+k] = envOrigin{Secret: src.Secret, Key: k}
		}
	}
	if len(unknownAfter) > 0 {
		manual = append(manual, fmt.Sprintf("container %s: envFrom %s come after a migrated Secret's envFrom and may override its variables, but their keys are not known here; put the migrated Secret's envFrom last, or list those variables under env", c.Name, strings.Join(unknownAfter, ", ")))
	}

	keptEnv := c.Env[:0:0]
	for _, e := range c.Env {
		ref := secretKeyRef(e)
		if ref == nil || !r.migrated(ref.Name) {
			if e.ValueFrom == nil {
				for _, v := range envReferences(e.Value) {
					if o, ok := state[v]; ok && o.Secret != "" {
						manual = append(manual, fmt.Sprintf("container %s: env %s refers to $(%s), which comes from Secret %s: the kubelet expands it before the container starts, and the env file sets it only later; write the value without the reference", c.Name, e.Name, v, o.Secret))
					}
				}
			}
			state[e.Name] = envOrigin{}
			keptEnv = append(keptEnv, e)
			continue
		}
		readsMigrated = true
		src, _ := r.source(ref.Name)
		if !slices.Contains(src.Keys, ref.Key) {
			if ref.Optional != nil && *ref.Optional {
				continue // the kubelet leaves the variable as it was
			}
			manual = append(manual, fmt.Sprintf("container %s: env %s reads key %s of Secret %s, which the Secret does not have, so its pods cannot start now; fix the reference first", c.Name, e.Name, ref.Key, src.Secret))
			continue
		}
		state[e.Name] = envOrigin{Secret: src.Secret, Key: ref.Key}
	}
	if !readsMigrated {
		return nil
	}

	var exports []envExport
	for _, name := range slices.Sorted(maps.Keys(state)) {
		if o := state[name]; o.Secret != "" {
			exports = append(exports, envExport{Name: name, Secret: o.Secret, Key: o.Key})
		}
	}
	for _, x := range exports {
		if !shellName.MatchString(x.Name) {
			manual = append(manual, fmt.Sprintf("container %s: variable %q (Secret %s) is not a name a shell can export, so a sourced env file cannot set it; rename the key or its envFrom prefix, or read it from a file", c.Name, x.Name, x.Secret))
		}
	}
	for _, s := range append(slices.Clone(c.Command), c.Args...) {
		for _, v := range envReferences(s) {
			if o, ok := state[v]; ok && o.Secret != "" {
				manual = append(manual, fmt.Sprintf("container %s: its command or args refer to $(%s), which comes from Secret %s: the kubelet expands it before the container starts, and the env file sets it only later; use \"$%s\" in a shell command instead", c.Name, v, o.Secret, v))
			}
		}
	}

	var argv []string
	switch ep, given := r.in.Entrypoints[c.Name]; {
	case len(c.Command) > 0:
		argv = append(slices.Clone(c.Command), c.Args...)
	case given && len(ep) > 0:
		argv = append(slices.Clone(ep), c.Args...)
	case len(exports) > 0:
		manual = append(manual, fmt.Sprintf("container %s: it reads env from Secret(s) %s but sets no command, and its image's entrypoint is unknown, so it cannot be started through a sourced env file; give the entrypoint argv (with the image's default args when the container sets none) as a JSON list with --entrypoint %s:%s='[\"PROGRAM\",\"ARG\"]' or in the config under migration.entrypoints", c.Name, strings.Join(exportSecrets(exports), ", "), r.in.Workload, c.Name))
	}
	r.manual = append(r.manual, dedupe(manual)...)
	if len(manual) > 0 {
		return nil
	}

	c.EnvFrom = nilIfEmptyEnvFrom(keptFrom)
	c.Env = nilIfEmptyEnv(keptEnv)
	if pc.Init {
		r.initReads = true
	}
	if len(exports) == 0 {
		// Every variable it read from a migrated Secret is overridden later in its env.
		r.changes = append(r.changes, fmt.Sprintf("container %s: references to migrated Secrets removed from env; each variable they set is overridden by a later env entry", c.Name))
		return nil
	}

	name, err := r.name("env", c.Name, "env\x00"+c.Name)
	if err != nil {
		return err
	}
	groups, err := r.envGroups(exports)
	if err != nil {
		return err
	}
	file := injectorSecretsDir + "/" + name
	r.secrets = append(r.secrets, injectedSecret{Name: name, ReadPath: groups[0].ReadPath, Template: envTemplate(groups)})
	r.files = append(r.files, InjectedFile{Path: file, Mode: envFileMode, Secret: strings.Join(exportSecrets(exports), ","), Env: true})
	r.had[c.Name] = appendUnique(r.had[c.Name], file)

	c.Command = []string{"/bin/sh", "-ec", ". " + file + ` && exec "$0" "$@"`}
	c.Args = argv
	names := make([]string, len(exports))
	for i, x := range exports {
		names[i] = x.Name
	}
	r.changes = append(r.changes,
		fmt.Sprintf("container %s: env %s (Secret %s) now set by sourcing %s, rendered by the Vault Agent", c.Name, strings.Join(names, ", "), strings.Join(exportSecrets(exports), ", "), file),
		fmt.Sprintf("container %s: starts as /bin/sh -ec '. %s && exec \"$0\" \"$@\"' followed by its original command and args, unchanged", c.Name, file))
	r.warnings = append(r.warnings,
		fmt.Sprintf("container %s: its image must have /bin/sh; exec probes, lifecycle hooks and kubectl exec start new processes that do not see the variables from %s", c.Name, file))
	return nil
}

// envGroups groups a container's exports by Secret, Secrets and variables sorted by name.
func (r *rewriter) envGroups(exports []envExport) ([]envGroup, error) {
	var out []envGroup
	for _, secret := range exportSecrets(exports) {
		src, _ := r.source(secret)
		readPath, err := kvReadPath(src)
		if err != nil {
			return nil, err
		}
		g := envGroup{Source: src, ReadPath: readPath}
		for _, x := range exports {
			if x.Secret == secret {
				g.Vars = append(g.Vars, x)
			}
		}
		out = append(out, g)
	}
	return out, nil
}

func exportSecrets(exports []envExport) []string {
	var out []string
	for _, x := range exports {
		out = appendUnique(out, x.Secret)
	}
	sort.Strings(out)
	return out
}

// checkSharedMounts looks at what the injector does beyond the files: it mounts every rendered
// directory (and /vault/secrets) into every container listed in agent-inject-containers and
// into every init container. A path a container already mounts something else at would make
// the pod invalid; files a container did not have before are warned about.
func (r *rewriter) checkSharedMounts() {
	dirs := append([]string{injectorSecretsDir}, r.mountDirs...)
	for _, pc := range r.allContainers() {
		c := pc.Container
		if !pc.Init && len(r.had[c.Name]) == 0 {
			continue // not in agent-inject-containers
		}
		for _, m := range c.VolumeMounts {
			if slices.Contains(dirs, path.Clean(m.MountPath)) {
				r.manual = append(r.manual, fmt.Sprintf("container %s mounts volume %s at %s, where the injector mounts its secrets volume; move that mount to another path first", c.Name, m.Name, m.MountPath))
			}
		}
		var extra []string
		for _, d := range r.mountDirs {
			if !slices.Contains(r.had[c.Name], d) {
				extra = append(extra, d)
			}
		}
		for _, f := range r.files {
			if f.Env && !slices.Contains(r.had[c.Name], f.Path) {
				extra = append(extra, f.Path)
			}
		}
		if len(extra) == 0 {
			continue
		}
		why := "it is listed in agent-inject-containers"
		if pc.Init {
			why = "the injector mounts its volumes into every init container"
		}
		r.warnings = append(r.warnings, fmt.Sprintf("container %s also gets %s, which it did not have (%s): it can read those values, and a directory mounted there hides what its image has at that path", c.Name, strings.Join(extra, ", "), why))
	}
}

// checkDestinations refuses two rendered files at one path (a volume's subdirectory that is
// another volume's directory, or a volume file named like an env file in /vault/secrets): the
// agent would render both and keep whichever it wrote last.
func (r *rewriter) checkDestinations() {
	seen := map[string]InjectedFile{}
	for _, f := range r.files {
		if prev, ok := seen[f.Path]; ok {
			r.manual = append(r.manual, fmt.Sprintf("two rendered files would be %s (from Secret %s and Secret %s): move one of the volumes to another path first", f.Path, prev.Secret, f.Secret))
			continue
		}
		seen[f.Path] = f
	}
}

// annotate writes the injector annotations; none when nothing is left to render (every
// variable read from a migrated Secret is overridden), since an agent would only log in.
func (r *rewriter) annotate() {
	if len(r.secrets) == 0 {
		return
	}
	ann := map[string]string{}
	for k, v := range r.tmpl.Annotations {
		ann[k] = v
	}
	ann[annInject] = "true"
	ann[annRole] = r.in.Role
	if p := strings.Trim(r.in.AuthPath, "/"); p != "" && p != defaultAuthPath {
		ann[annAuthPath] = r.in.AuthPath
	}
	var listed []string
	for _, c := range r.tmpl.Spec.Containers {
		if len(r.had[c.Name]) > 0 {
			listed = append(listed, c.Name)
		}
	}
	// Listed even when empty: without the annotation the injector mounts into every container.
	ann[annContainers] = strings.Join(listed, ",")
	if r.initReads {
		ann[annInitFirst] = "true"
	}
	if r.in.Job {
		ann[annPrePopulateOnly] = "true"
	}
	for _, s := range r.secrets {
		ann[annSecret+s.Name] = s.ReadPath
		ann[annTemplate+s.Name] = s.Template
		if s.Dir != "" {
			ann[annVolumePath+s.Name] = s.Dir
			ann[annFile+s.Name] = s.File
			ann[annPerms+s.Name] = fmt.Sprintf("%04o", s.Perms)
		}
	}
	r.tmpl.Annotations = ann

	line := fmt.Sprintf("annotations: the Vault Agent Injector renders %d file(s) with role %s", len(r.secrets), r.in.Role)
	if ann[annAuthPath] != "" {
		line += " at auth path " + r.in.AuthPath
	}
	if len(listed) > 0 {
		line += ", mounted into container(s) " + strings.Join(listed, ", ")
	} else {
		line += ", mounted into no application container"
	}
	r.changes = append(r.changes, line)
	if r.initReads {
		r.changes = append(r.changes, "annotations: agent-init-first, so the agent renders before the init containers that read the Secrets")
	}
	if r.in.Job {
		r.changes = append(r.changes, "annotations: agent-pre-populate-only, so no agent sidecar keeps the Job from completing")
	}
}

// name derives the injector's name for a secret: lowercase (the injector lowercases file names
// and the annotation suffix must match), a readable part from label, a hash of what it stands
// for so that it is unique and the same on every run, and short enough for every
// per-secret annotation name.
func (r *rewriter) name(kind, label, identity string) (string, error) {
	sum := sha256.Sum256([]byte(identity))
	hash := hex.EncodeToString(sum[:])[:8]
	var b strings.Builder
	dash := false
	for _, ch := range strings.ToLower(label) {
		if ch >= 'a' && ch <= 'z' || ch >= '0' && ch <= '9' {
			b.WriteRune(ch)
			dash = false
		} else if !dash {
			b.WriteByte('-')
			dash = true
		}
	}
	slug := strings.Trim(b.String(), "-")
	if room := maxSecretName - len(kind) - len(hash) - 2; len(slug) > room {
		slug = strings.TrimRight(slug[:room], "-")
	}
	name := kind + "-" + hash
	if slug != "" {
		name = kind + "-" + slug + "-" + hash
	}
	if prev, ok := r.names[name]; ok && prev != identity {
		return "", errors.New("two injected files derive the same name " + name + "; rename one of the containers or volumes")
	}
	r.names[name] = identity
	return name, nil
}

func secretKeyRef(e corev1.EnvVar) *corev1.SecretKeySelector {
	if e.ValueFrom == nil {
		return nil
	}
	return e.ValueFrom.SecretKeyRef
}

func envFromName(e corev1.EnvFromSource) string {
	switch {
	case e.ConfigMapRef != nil:
		return "ConfigMap " + e.ConfigMapRef.Name
	case e.SecretRef != nil:
		return "Secret " + e.SecretRef.Name
	}
	return "source"
}

func isFalse(b *bool) bool { return b != nil && !*b }

func appendUnique(list []string, s string) []string {
	if slices.Contains(list, s) {
		return list
	}
	return append(list, s)
}

func dedupe(list []string) []string {
	var out []string
	for _, s := range list {
		out = appendUnique(out, s)
	}
	return out
}

func nilIfEmptyMounts(m []corev1.VolumeMount) []corev1.VolumeMount {
	if len(m) == 0 {
		return nil
	}
	return m
}

func nilIfEmptyEnv(e []corev1.EnvVar) []corev1.EnvVar {
	if len(e) == 0 {
		return nil
	}
	return e
}

func nilIfEmptyEnvFrom(e []corev1.EnvFromSource) []corev1.EnvFromSource {
	if len(e) == 0 {
		return nil
	}
	return e
}
