package check

import (
	"bytes"
	"fmt"
	"github.com/vaultctl/vaultctl/config"
	"io"
	"os"
	"regexp"
	"sort"
	"strconv"
	"strings"

	"gopkg.in/yaml.v3"
)

// fileResult is what one file contributes to the report.
type fileResult struct {
	findings []Finding
	objects  int
	secrets  []secretInfo
}

// secretInfo records a Secret seen in the input, so references to allowed types can be exempted.
type secretInfo struct{ ref, typ string }

// fileChecker checks files one at a time; one per worker goroutine.
type fileChecker struct {
	s     *settings
	file  string
	chart string // the Helm chart whose templates/ holds file, if any
	res   fileResult
	w     walker
	fp    fastParser
	buf   []byte
	data  []byte // the file being checked, for source text in messages
	// secretLines are the kind: lines of the Secrets parsed in the file.
	secretLines []int
}

func newFileChecker(s *settings) *fileChecker { return &fileChecker{s: s} }

// readFile reads a file into the checker's reusable buffer (valid until the next call): the
// parsers copy what they keep, so one buffer per worker serves every file.
func (fc *fileChecker) readFile(name string) ([]byte, error) {
	f, err := os.Open(name)
	if err != nil {
		return nil, err
	}
	defer f.Close()
	if fc.buf == nil {
		fc.buf = make([]byte, 64<<10)
	}
	n := 0
	for {
		if n == len(fc.buf) {
			fc.buf = append(fc.buf, make([]byte, len(fc.buf))...)
		}
		m, err := f.Read(fc.buf[n:])
		n += m
		if err == io.EOF {
			return fc.buf[:n], nil
		}
		if err != nil {
			return nil, err
		}
	}
}

// checkFile parses and checks one file.
func (fc *fileChecker) checkFile(name string, data []byte) fileResult {
	fc.file, fc.data = name, data
	fc.res = fileResult{}
	fc.secretLines = fc.secretLines[:0]
	defer func() { fc.data = nil }()
	docs, serr := parseDocuments(data, &fc.fp)
	for _, doc := range docs {
		fc.w = walker{budget: nodeBudget}
		nf, no, ns := len(fc.res.findings), fc.res.objects, len(fc.res.secrets)
		fc.document(doc, 0)
		if fc.w.exhausted() {
			// Whatever was found before the budget ran out is an arbitrary part of the document.
			fc.res.findings, fc.res.objects, fc.res.secrets = fc.res.findings[:nf], no, fc.res.secrets[:ns]
			fc.res.findings = append(fc.res.findings, Finding{
				File: name, Line: doc.Line, Column: doc.Column, Rule: RuleParseError, Severity: SeverityError,
				Message: "document expands too many aliases to check",
				Fix:     "write the document without deeply nested YAML aliases",
			})
		}
	}
	if serr != nil {
		msg, fix := "not valid YAML or JSON: "+serr.Msg, parseErrorFix
		template := bytes.Contains(data, []byte("{{"))
		if template {
			// The usual cause in a manifest tree: a Helm chart or another Go-template source.
			msg += "; the file contains {{ }} template directives"
			fix = "check the rendered output instead (" + fc.helmHint() + ") and --exclude the template sources"
		}
		fc.res.findings = append(fc.res.findings, Finding{
			File: name, Line: serr.Line, Column: serr.Column, Rule: RuleParseError, Severity: SeverityError,
			Message: msg, Fix: fix,
		})
		if template {
			fc.scanTemplateSecrets(data)
		}
	}
	return fc.res
}

// parseErrorFix is the one-line fix of a syntax error; the rule's Fix is a paragraph with
// examples, too long for a finding.
const parseErrorFix = "fix the syntax at the reported line; if the file is a Helm or Kustomize source, check the rendered output instead (helm template . | vaultctl check -) and --exclude the sources"

// object is a Kubernetes object found in a document or a List.
type object struct {
	n                 *yaml.Node
	apiVersion, kind  string
	name, namespace   string
	kindKey           *yaml.Node // for the finding's position
	line, column      int
	explicitNamespace bool
	// unrendered describes template directives in the name or namespace ("metadata.name is
	// {{ .Values.name }}"): the object is a template source, not what kubectl applies.
	unrendered string
	// nsUnknown: the namespace is a template, so it may be any namespace once rendered.
	nsUnknown bool
}

func (fc *fileChecker) document(n *yaml.Node, depth int) {
	n = deref(n)
	if n == nil || n.Kind != yaml.MappingNode || depth > 10 {
		return // not an object: a values file, a scalar; nothing Kubernetes would apply
	}
	w := &fc.w
	kindKey, kindNode := w.get(n, "kind")
	kind, _ := str(kindNode)
	apiVersion := w.getStr(n, "apiVersion")
	if depth == 0 && fc.isKustomization(apiVersion, kind) {
		fc.kustomization(n)
		return
	}
	if kind == "" {
		return
	}
	o := &object{n: n, kind: kind, kindKey: kindKey, apiVersion: apiVersion,
		line: kindKey.Line, column: kindKey.Column}
	_, meta := w.get(n, "metadata")
	_, nameNode := w.get(meta, "name")
	o.name, _ = str(nameNode)
	if o.name == "" {
		if g := w.getStr(meta, "generateName"); g != "" {
			o.name = g + "*"
		}
	}
	_, nsNode := w.get(meta, "namespace")
	if ns, _ := str(nsNode); ns != "" {
		o.namespace, o.explicitNamespace = ns, true
	} else {
		o.namespace = fc.s.defaultNS
	}
	var unrendered []string
	if t := fc.templated(nameNode); t != "" {
		o.name = t
		unrendered = append(unrendered, "metadata.name is "+t)
	}
	if t := fc.templated(nsNode); t != "" {
		o.namespace, o.explicitNamespace, o.nsUnknown = t, true, true
		unrendered = append(unrendered, "metadata.namespace is "+t)
	}
	o.unrendered = strings.Join(unrendered, ", ")

	if _, items := w.get(n, "items"); items != nil && (kind == "List" || strings.HasSuffix(kind, "List")) {
		// kubectl applies every item of a v1 List (and of FooList kinds); so do we.
		for _, it := range w.items(items) {
			fc.document(it, depth+1)
		}
		return
	}
	fc.res.objects++
	switch {
	case kind == "Secret" && (o.apiVersion == "v1" || o.apiVersion == ""):
		fc.secret(o)
	case isWorkload(kind, o.apiVersion):
		fc.workload(o)
	}
}

// workloadGroups maps workload kinds to the API groups they belong to. A CRD that happens to be
// called Deployment in another group is not a workload the injector sees.
var workloadGroups = map[string][]string{
	"Pod":                   {"v1"},
	"ReplicationController": {"v1"},
	"Deployment":            {"apps/", "extensions/"},
	"StatefulSet":           {"apps/"},
	"DaemonSet":             {"apps/", "extensions/"},
	"ReplicaSet":            {"apps/", "extensions/"},
	"Job":                   {"batch/"},
	"CronJob":               {"batch/"},
}

func isWorkload(kind, apiVersion string) bool {
	groups, ok := workloadGroups[kind]
	if !ok {
		return false
	}
	if apiVersion == "" {
		return true // kubectl would refuse it, but a guard errs on the side of checking
	}
	for _, g := range groups {
		if apiVersion == g || (strings.HasSuffix(g, "/") && strings.HasPrefix(apiVersion, g)) {
			return true
		}
	}
	return false
}

func (fc *fileChecker) add(o *object, rule string, n *yaml.Node, msg, fix string) *Finding {
	line, col := o.line, o.column
	if n != nil && n.Line > 0 {
		line, col = n.Line, n.Column
	}
	if fc.fromTemplate(o) && rule != RuleRawSecret {
		fix += "; then check the rendered output (" + fc.helmHint() + ")"
	}
	fc.res.findings = append(fc.res.findings, Finding{
		File: fc.file, Line: line, Column: col, Kind: o.kind, Namespace: o.namespace, Name: o.name,
		Rule: rule, Severity: rulesByID[rule].Severity, Message: msg, Fix: fix,
	})
	return &fc.res.findings[len(fc.res.findings)-1]
}

// required reports whether injection is required for o: in a required namespace, or in a
// namespace that is a template and may render as any.
func (fc *fileChecker) required(o *object) bool {
	return o.nsUnknown || fc.s.required(o.namespace)
}

func (fc *fileChecker) secret(o *object) {
	typ := fc.w.getStr(o.n, "type")
	if typ == "" {
		typ = "Opaque"
	}
	fc.res.secrets = append(fc.res.secrets, secretInfo{ref: o.namespace + "/" + o.name, typ: typ})
	fc.secretLines = append(fc.secretLines, o.line)
	if !fc.required(o) || fc.s.allowTypes[typ] {
		return
	}
	if fc.fromTemplate(o) {
		fc.templateSecret(o, typ)
		return
	}
	fix := fmt.Sprintf("move the values to Vault (for example secret/%s/%s), delete this Secret and inject them with vault.hashicorp.com/agent-inject-secret-* annotations",
		o.namespace, o.name)
	if typ != "Opaque" {
		fix += fmt.Sprintf("; or --allow-secret-type %s if this type must stay a Secret", typ)
	}
	fc.add(o, RuleRawSecret, o.kindKey,
		fmt.Sprintf("Secret of type %s in a namespace whose secrets must come from Vault", typ), fix)
}

// podTemplate is the part of a workload the injector sees: the pod's metadata and spec.
type podTemplate struct {
	key  *yaml.Node // template's metadata key, else template (metadata for a Pod), for positions
	meta *yaml.Node
	spec *yaml.Node
	// where is the template's path, for messages.
	where string
}

func (fc *fileChecker) template(o *object) (podTemplate, bool) {
	w := &fc.w
	var t *yaml.Node
	var tk *yaml.Node
	var where string
	switch o.kind {
	case "Pod":
		mk, meta := w.get(o.n, "metadata")
		_, spec := w.get(o.n, "spec")
		if mk == nil {
			mk = o.kindKey
		}
		return podTemplate{key: mk, meta: meta, spec: spec, where: "metadata"}, true
	case "CronJob":
		tk, t = w.path(o.n, "spec", "jobTemplate", "spec", "template")
		where = "spec.jobTemplate.spec.template"
	default:
		tk, t = w.path(o.n, "spec", "template")
		where = "spec.template"
	}
	if t == nil {
		return podTemplate{}, false
	}
	mk, meta := w.get(t, "metadata")
	_, spec := w.get(t, "spec")
	if mk != nil {
		tk = mk
	}
	return podTemplate{key: tk, meta: meta, spec: spec, where: where + ".metadata"}, true
}

// annotation is one annotation with its nodes.
type annotation struct {
	key, value string
	k, v       *yaml.Node
}

func (fc *fileChecker) annotations(meta *yaml.Node) (map[string]annotation, []annotation, *yaml.Node) {
	ak, an := fc.w.get(meta, "annotations")
	ps := fc.w.pairs(an)
	m := make(map[string]annotation, len(ps))
	list := make([]annotation, 0, len(ps))
	for _, p := range ps {
		k, ok := str(p.k)
		if !ok {
			continue
		}
		v, _ := str(p.v) // a null value reads as ""
		a := annotation{key: k, value: v, k: p.k, v: p.v}
		m[k] = a
		list = append(list, a)
	}
	return m, list, ak
}

// parseBool is vault-k8s's reading of boolean annotations (strconv.ParseBool; "" is false).
func parseBool(s string) (bool, error) {
	if s == "" {
		return false, nil
	}
	return strconv.ParseBool(s)
}

func (fc *fileChecker) workload(o *object) {
	t, ok := fc.template(o)
	if !ok {
		return // no pod template: not a valid workload, nothing the injector would see
	}
	// Vault's own pods cannot get their secrets from Vault.
	required := fc.required(o) && !fc.vaultComponent(o, t)
	ann, annList, annKey := fc.annotations(t.meta)
	pos := annKey
	if pos == nil {
		pos = t.key
	}

	// Annotations on the workload's own metadata never reach the pod.
	var own map[string]annotation
	var ownList []annotation
	if o.kind != "Pod" {
		_, meta := fc.w.get(o.n, "metadata")
		own, ownList, _ = fc.annotations(meta)
	}
	misplaced := func(key string) string {
		if a, ok := own[key]; ok {
			if _, onPod := ann[key]; !onPod {
				return fmt.Sprintf(" (it is on the %s's own metadata at line %d, which the injector never sees)", o.kind, a.k.Line)
			}
		}
		return ""
	}
	reported := map[string]bool{}

	inject, hasInject := ann[annInject]
	injectOn := false
	var injectErr error
	if hasInject {
		injectOn, injectErr = parseBool(inject.value)
	}
	role := ann[annRole].value
	roleNode := ann[annRole].v
	if role == "" {
		role, roleNode = ann[annAuthConfigRole].value, ann[annAuthConfigRole].v
	}
	_, hasConfigMap := ann[annConfigMap]
	moveFix := fmt.Sprintf("add to %s.annotations (not the %s's metadata)", t.where, o.kind)
	if o.kind == "Pod" {
		moveFix = "add to metadata.annotations"
	}

	if required {
		switch {
		case !hasInject:
			reported[annInject] = true
			fc.add(o, RuleMissingInjection, pos,
				fmt.Sprintf("%s has no %s annotation%s", podWhere(o, t), annInject, misplaced(annInject)),
				moveFix+`: vault.hashicorp.com/agent-inject: "true" and vault.hashicorp.com/role: "<role>"`)
		case injectErr != nil:
			fc.add(o, RuleMissingInjection, inject.v,
				fmt.Sprintf("%s is %q, which the injector does not read as a boolean, so it refuses the pod", annInject, inject.value),
				`set vault.hashicorp.com/agent-inject: "true"`)
		case !injectOn:
			fc.add(o, RuleMissingInjection, inject.v,
				fmt.Sprintf("%s is %q, so nothing is injected", annInject, inject.value),
				`set vault.hashicorp.com/agent-inject: "true"`)
		case ann[annPrefix+"agent-inject-status"].value == "injected":
			// Typical of a manifest copied from a running pod: the injector skips pods so marked.
			a := ann[annPrefix+"agent-inject-status"]
			fc.add(o, RuleMissingInjection, a.k,
				`vault.hashicorp.com/agent-inject-status is "injected", so the injector leaves the pod alone`,
				"remove vault.hashicorp.com/agent-inject-status; the injector sets it itself")
		case role == "" && !hasConfigMap:
			reported[annRole] = true
			fc.add(o, RuleMissingInjection, inject.k,
				fmt.Sprintf("injection is on but %s names no %s, so the agent cannot log in%s", podWhere(o, t), annRole, misplaced(annRole)),
				moveFix+`: vault.hashicorp.com/role: "<role bound to the pod's service account>"`)
		}
		fc.secretReferences(o, t)
	}

	// A vault annotation on the workload's metadata that the pod lacks is lost.
	for _, a := range ownList {
		if !strings.HasPrefix(a.key, annPrefix) || reported[a.key] {
			continue
		}
		if _, onPod := ann[a.key]; onPod {
			continue
		}
		fc.add(o, RuleUnknownAnnotation, a.k,
			fmt.Sprintf("%s is on the %s's own metadata; the injector reads only the pod template's annotations", a.key, o.kind),
			"move it to "+t.where+".annotations")
	}
	for _, a := range annList {
		if strings.HasPrefix(a.key, annPrefix) && !knownAnnotation(a.key) {
			fix := "remove it or correct the name; see the vault-k8s annotation reference"
			if s := suggestAnnotation(a.key); s != "" {
				fix = "did you mean " + s + "?"
			}
			fc.add(o, RuleUnknownAnnotation, a.k,
				fmt.Sprintf("the injector does not know %s and ignores it", a.key), fix)
		}
	}

	if !injectOn {
		return
	}
	if completes(o, t, &fc.w) {
		if ppo, err := parseBool(ann[annPrePopulateOnly].value); err != nil || !ppo {
			fc.add(o, RuleJobSidecar, inject.k,
				fmt.Sprintf("%s runs to completion but the injector adds a vault-agent sidecar that never exits, so it never completes", o.kind),
				`add vault.hashicorp.com/agent-pre-populate-only: "true" to `+t.where+".annotations")
		}
	}
	paths := injectedPaths(ann)
	for _, p := range paths {
		if fixed, bad := fc.kvPathFix(p.path); bad {
			fc.add(o, RuleKVPath, p.node,
				fmt.Sprintf("%s reads %s, which is on the KV v2 mount %s/ but lacks data/", p.annotation, p.path, config.KVMountOf(fc.s.kvMounts, p.path)),
				fmt.Sprintf("use %s", fixed))
		}
	}
	if fc.s.cfg != nil {
		fc.policyMismatch(o, t, ann, role, roleNode, paths, required && role == "" && !hasConfigMap)
	}
}

func podWhere(o *object, t podTemplate) string {
	if o.kind == "Pod" {
		return "the Pod"
	}
	return "the pod template"
}

// completes reports whether the pod is meant to finish: Jobs, CronJobs and Pods that do not
// restart forever.
func completes(o *object, t podTemplate, w *walker) bool {
	switch o.kind {
	case "Job", "CronJob":
		return true
	case "Pod":
		rp := w.getStr(t.spec, "restartPolicy")
		return rp == "Never" || rp == "OnFailure"
	}
	return false
}

// injectedPath is a Vault path the agent will read.
type injectedPath struct {
	path       string
	annotation string
	node       *yaml.Node
}

// templateSecretRE finds the paths of secret calls in a Consul Template: {{ with secret "p" }}.
var templateSecretRE = regexp.MustCompile("\\bsecret\\s+(?:\"([^\"]*)\"|`([^`]*)`)")

// injectedPaths lists the paths the agent reads, following vault-k8s: a secret's template, when
// given, replaces the default template and so decides which paths are read.
func injectedPaths(ann map[string]annotation) []injectedPath {
	names := map[string]bool{}
	for k, a := range ann {
		if strings.TrimSpace(a.value) == "" {
			continue
		}
		for _, p := range []string{annSecret, annTemplateFile, annTemplate} {
			if name, ok := strings.CutPrefix(k, p); ok && name != "" {
				names[name] = true
				break
			}
		}
	}
	sorted := make([]string, 0, len(names))
	for n := range names {
		sorted = append(sorted, n)
	}
	sort.Strings(sorted)
	var out []injectedPath
	for _, name := range sorted {
		if t, ok := ann[annTemplate+name]; ok && strings.TrimSpace(t.value) != "" {
			for _, m := range templateSecretRE.FindAllStringSubmatchIndex(t.value, -1) {
				s, e := m[2], m[3]
				if s < 0 {
					s, e = m[4], m[5]
				}
				p := t.value[s:e]
				if strings.Contains(p, "{{") {
					continue // built at run time; nothing to check statically
				}
				line := t.v.Line + strings.Count(t.value[:s], "\n")
				if t.v.Style&(yaml.LiteralStyle|yaml.FoldedStyle) != 0 {
					line++ // block scalar content starts below the indicator
				}
				n := &yaml.Node{Line: line, Column: t.v.Column}
				out = append(out, injectedPath{path: strings.TrimPrefix(p, "/"), annotation: t.key, node: n})
			}
			continue
		}
		if _, ok := ann[annTemplateFile+name]; ok {
			continue // the template lives in a file we cannot see
		}
		if s, ok := ann[annSecret+name]; ok && strings.TrimSpace(s.value) != "" {
			out = append(out, injectedPath{path: strings.TrimPrefix(strings.TrimSpace(s.value), "/"), annotation: s.key, node: s.v})
		}
	}
	return out
}

// kvPathFix reports whether p is on a KV v2 mount without data/, and the path with it.
func (fc *fileChecker) kvPathFix(p string) (string, bool) {
	m := config.KVMountOf(fc.s.kvMounts, p)
	if m == "" {
		return "", false
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, m), "/")
	if strings.HasPrefix(rest, "data/") {
		return "", false
	}
	rest = strings.TrimPrefix(rest, "metadata/") // metadata/ holds versions, not the values
	return m + "/data/" + rest, true
}

// apiPath is the path the agent actually reads: on a KV v2 mount, data/ inserted after the mount
// if missing (the template engine does that when it can; kv-path reports the omission).
func apiPath(mounts []string, p string) string {
	m := config.KVMountOf(mounts, p)
	if m == "" {
		return p
	}
	rest := strings.TrimPrefix(strings.TrimPrefix(p, m), "/")
	if strings.HasPrefix(rest, "data/") || strings.HasPrefix(rest, "metadata/") {
		return p
	}
	return m + "/data/" + rest
}

// secretReferences reports containers and volumes that read Kubernetes Secrets.
func (fc *fileChecker) secretReferences(o *object, t podTemplate) {
	w := &fc.w
	for _, list := range []string{"initContainers", "containers", "ephemeralContainers"} {
		_, cs := w.get(t.spec, list)
		for _, c := range w.items(cs) {
			cname := w.getStr(c, "name")
			_, env := w.get(c, "env")
			for _, e := range w.items(env) {
				k, ref := w.path(e, "valueFrom", "secretKeyRef")
				if ref == nil {
					continue
				}
				sec, key := w.getStr(ref, "name"), w.getStr(ref, "key")
				f := fc.add(o, RuleSecretReference, k,
					fmt.Sprintf("container %s sets %s from key %s of Secret %s (secretKeyRef)", cname, w.getStr(e, "name"), key, sec),
					"inject the value with vault.hashicorp.com/agent-inject-secret-* and read it from /vault/secrets/ instead")
				f.secretRef = o.namespace + "/" + sec
			}
			_, envFrom := w.get(c, "envFrom")
			for _, e := range w.items(envFrom) {
				k, ref := w.get(e, "secretRef")
				if ref == nil {
					continue
				}
				sec := w.getStr(ref, "name")
				f := fc.add(o, RuleSecretReference, k,
					fmt.Sprintf("container %s loads every key of Secret %s into its environment (envFrom.secretRef)", cname, sec),
					"render the values with an agent-inject-template-* annotation and source /vault/secrets/<name> at start-up instead")
				f.secretRef = o.namespace + "/" + sec
			}
		}
	}
	_, vols := w.get(t.spec, "volumes")
	for _, v := range w.items(vols) {
		vname := w.getStr(v, "name")
		if k, s := w.get(v, "secret"); s != nil {
			sec := w.getStr(s, "secretName")
			f := fc.add(o, RuleSecretReference, k,
				fmt.Sprintf("volume %s mounts Secret %s", vname, sec),
				"replace the volume with vault.hashicorp.com/agent-inject-secret-* annotations; the agent writes the files to /vault/secrets/")
			f.secretRef = o.namespace + "/" + sec
		}
		_, sources := w.path(v, "projected", "sources")
		for _, src := range w.items(sources) {
			if k, s := w.get(src, "secret"); s != nil {
				sec := w.getStr(s, "name")
				f := fc.add(o, RuleSecretReference, k,
					fmt.Sprintf("projected volume %s includes Secret %s", vname, sec),
					"replace the Secret source with vault.hashicorp.com/agent-inject-secret-* annotations")
				f.secretRef = o.namespace + "/" + sec
			}
		}
	}
}
