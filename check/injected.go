package check

import "gopkg.in/yaml.v3"

// InjectedPath is a Vault path a pod's agent reads and the annotation that names it.
type InjectedPath struct {
	Path       string
	Annotation string
}

// InjectedPaths lists the paths the agent reads given a live pod's annotations, by the same
// rules check applies to manifests (a secret's template, when given, decides what is read; a
// template file cannot be seen; paths built at run time are left out). doctor uses it.
func InjectedPaths(annotations map[string]string) []InjectedPath {
	ann := make(map[string]annotation, len(annotations))
	for k, v := range annotations {
		ann[k] = annotation{key: k, value: v, k: &yaml.Node{}, v: &yaml.Node{}}
	}
	var out []InjectedPath
	for _, p := range injectedPaths(ann) {
		out = append(out, InjectedPath{Path: p.path, Annotation: p.annotation})
	}
	return out
}
