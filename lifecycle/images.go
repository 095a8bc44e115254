package lifecycle

import (
	"errors"
	"fmt"
	"io"
	"slices"
	"strings"

	corev1 "k8s.io/api/core/v1"
	k8syaml "k8s.io/apimachinery/pkg/util/yaml"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
)

// Image is one container image the config will run, as the rendered chart names it.
type Image struct {
	// Component is server, injector or agent (the Vault Agent the injector adds to pods).
	Component string `json:"component"`
	Image     string `json:"image"`
	// ConfigKey is the key that overrides it; Default its value when unset.
	ConfigKey  string `json:"configKey"`
	Default    string `json:"default"`
	Overridden bool   `json:"overridden"`
	// Where says which rendered object uses it: "StatefulSet/vault container vault".
	Where []string `json:"where"`
}

// agentImageEnv is how the chart hands the agent image to the injector, which adds it to pods.
const agentImageEnv = "AGENT_INJECT_VAULT_IMAGE"

var imageKeys = map[string]struct{ key, def string }{
	"server":   {"vault.images.vault", config.DefaultVaultImage},
	"injector": {"vault.images.injector", config.DefaultInjectorImage},
	"agent":    {"vault.images.agent", config.DefaultAgentImage},
}

// Images renders the releases vaultctl installs for cfg (the server in in-cluster mode, the
// injector when enabled), exactly as the server and injector phases build their values, and
// lists every image in their pod templates plus the agent image the injector injects. Reading
// the rendered manifests rather than the config means the list cannot miss an image the chart
// adds. cfg must have its defaults applied.
func Images(cfg *config.Config) ([]Image, error) {
	ns := cfg.Vault.Namespace
	type release struct {
		name   string
		values map[string]any
		// component of the images in this release's pod templates
		component string
	}
	var rels []release
	if !cfg.External() {
		rels = append(rels, release{charts.ServerRelease, charts.ServerValues(cfg), "server"})
	}
	if cfg.InjectorEnabled() {
		// The CA goes into an environment variable only; it does not change any image.
		rels = append(rels, release{charts.InjectorRelease, charts.InjectorValues(cfg, nil), "injector"})
	}
	var out []Image
	add := func(component, image, where string) {
		for i := range out {
			if out[i].Component == component && out[i].Image == image {
				if !slices.Contains(out[i].Where, where) {
					out[i].Where = append(out[i].Where, where)
				}
				return
			}
		}
		k := imageKeys[component]
		out = append(out, Image{Component: component, Image: image, ConfigKey: k.key, Default: k.def, Overridden: k.def != "" && image != k.def, Where: []string{where}})
	}
	for _, r := range rels {
		manifest, err := charts.Render(r.name, ns, r.values)
		if err != nil {
			return nil, err
		}
		templates, err := podTemplates(manifest)
		if err != nil {
			return nil, fmt.Errorf("reading the rendered %s release: %w", r.name, err)
		}
		for _, t := range templates {
			for _, c := range append(slices.Clone(t.spec.InitContainers), t.spec.Containers...) {
				add(r.component, c.Image, fmt.Sprintf("%s container %s", t.object, c.Name))
				for _, e := range c.Env {
					if e.Name == agentImageEnv && e.Value != "" {
						add("agent", e.Value, fmt.Sprintf("%s env %s", t.object, agentImageEnv))
					}
				}
			}
		}
	}
	return out, nil
}

type podTemplate struct {
	object string // Kind/name
	spec   corev1.PodSpec
}

// podTemplates finds the pod specs of a rendered manifest: workload templates and bare Pods.
func podTemplates(manifest string) ([]podTemplate, error) {
	dec := k8syaml.NewYAMLOrJSONDecoder(strings.NewReader(manifest), 4096)
	var out []podTemplate
	for {
		var o struct {
			Kind     string `json:"kind"`
			Metadata struct {
				Name string `json:"name"`
			} `json:"metadata"`
			Spec struct {
				corev1.PodSpec
				Template struct {
					Spec corev1.PodSpec `json:"spec"`
				} `json:"template"`
			} `json:"spec"`
		}
		if err := dec.Decode(&o); err != nil {
			if errors.Is(err, io.EOF) {
				return out, nil
			}
			return nil, err
		}
		obj := o.Kind + "/" + o.Metadata.Name
		switch o.Kind {
		case "Pod":
			out = append(out, podTemplate{obj, o.Spec.PodSpec})
		case "StatefulSet", "Deployment", "DaemonSet", "ReplicaSet", "Job":
			out = append(out, podTemplate{obj, o.Spec.Template.Spec})
		}
	}
}
