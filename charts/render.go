package charts

import (
	"fmt"
	"io"

	"helm.sh/helm/v3/pkg/action"
	"helm.sh/helm/v3/pkg/chartutil"
	kubefake "helm.sh/helm/v3/pkg/kube/fake"
	"helm.sh/helm/v3/pkg/storage"
	"helm.sh/helm/v3/pkg/storage/driver"
)

// RenderKubeVersion is the Kubernetes version offline rendering assumes.
const RenderKubeVersion = "v1.36.3"

// Render renders the vault chart offline, as `helm template` would, and returns the manifest
// Helm would store for the release (objects in Helm's install order).
func Render(release, namespace string, vals map[string]any) (string, error) {
	ch, err := Vault()
	if err != nil {
		return "", err
	}
	kv, err := chartutil.ParseKubeVersion(RenderKubeVersion)
	if err != nil {
		return "", err
	}
	cfg := &action.Configuration{
		Releases:     storage.Init(driver.NewMemory()),
		KubeClient:   &kubefake.PrintingKubeClient{Out: io.Discard},
		Capabilities: chartutil.DefaultCapabilities,
		Log:          func(string, ...any) {},
	}
	in := action.NewInstall(cfg)
	in.DryRun = true
	in.ClientOnly = true
	in.Replace = true
	in.ReleaseName = release
	in.Namespace = namespace
	in.KubeVersion = kv
	in.DisableHooks = true
	rel, err := in.Run(ch, vals)
	if err != nil {
		return "", fmt.Errorf("rendering chart %s: %w", ch.Metadata.Name, err)
	}
	return rel.Manifest, nil
}
