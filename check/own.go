package check

import (
	"strings"

	"gopkg.in/yaml.v3"
)

// Vault's own workloads cannot get their secrets from Vault: the server is Vault, the injector
// is what injects, and both mount their TLS Secrets. They are recognised by the labels the
// charts put on them, vaultctl's (charts/vault) and the official hashicorp/vault chart:
//
//	server:       app.kubernetes.io/name: vault, component: server
//	injector:     app.kubernetes.io/name: vault-agent-injector, component: webhook
//	CSI provider: app.kubernetes.io/name: vault-csi-provider (official chart only)
//
// with the chart's nameOverride allowed for (vaultctl's chart marks every object
// app.kubernetes.io/part-of: vaultctl; the official one names the chart in helm.sh/chart). The
// official chart's helm test Pod, <release>-server-test, carries no labels and is matched by its
// hook. Labels are easily copied onto an application, so a container must also run a Vault image
// (vault, vault-enterprise, vault-k8s, vault-csi-provider, mirrored under any registry).

// vaultComponent reports whether o is one of Vault's own components.
func (fc *fileChecker) vaultComponent(o *object, t podTemplate) bool {
	w := &fc.w
	pod := fc.labels(t.meta)
	var own map[string]string
	if o.kind != "Pod" {
		_, meta := w.get(o.n, "metadata")
		own = fc.labels(meta)
	}
	label := func(k string) string {
		if v, ok := pod[k]; ok {
			return v
		}
		return own[k]
	}
	name, component := label("app.kubernetes.io/name"), label("component")
	vaultctl := label("app.kubernetes.io/part-of") == "vaultctl"
	officialChart := strings.HasPrefix(label("helm.sh/chart"), "vault-")
	var labelled bool
	switch {
	case component == "server": // the server
		labelled = name == "vault" || vaultctl || officialChart
	case component == "webhook": // the Agent Injector
		labelled = strings.HasSuffix(name, "-agent-injector") || vaultctl
	case strings.HasSuffix(name, "-csi-provider"):
		labelled = name == "vault-csi-provider" || officialChart
	case o.kind == "Pod" && strings.HasSuffix(o.name, "-server-test"):
		labelled = fc.annotation(t.meta, "helm.sh/hook") == "test"
	}
	return labelled && fc.runsVaultImage(t.spec)
}

// labels returns a metadata's labels.
func (fc *fileChecker) labels(meta *yaml.Node) map[string]string {
	_, l := fc.w.get(meta, "labels")
	ps := fc.w.pairs(l)
	if len(ps) == 0 {
		return nil
	}
	m := make(map[string]string, len(ps))
	for _, p := range ps {
		k, ok := str(p.k)
		if !ok {
			continue
		}
		m[k], _ = str(p.v)
	}
	return m
}

func (fc *fileChecker) annotation(meta *yaml.Node, key string) string {
	_, a := fc.w.get(meta, "annotations")
	return fc.w.getStr(a, key)
}

// vaultImages are the repositories (last path element) of Vault's own images.
var vaultImages = map[string]bool{"vault": true, "vault-enterprise": true, "vault-k8s": true, "vault-csi-provider": true}

// runsVaultImage reports whether a container of the pod spec runs a Vault image.
func (fc *fileChecker) runsVaultImage(spec *yaml.Node) bool {
	_, cs := fc.w.get(spec, "containers")
	for _, c := range fc.w.items(cs) {
		img := fc.w.getStr(c, "image")
		if i := strings.IndexByte(img, '@'); i >= 0 {
			img = img[:i]
		}
		if i := strings.LastIndexByte(img, '/'); i >= 0 {
			img = img[i+1:]
		}
		if i := strings.IndexByte(img, ':'); i >= 0 {
			img = img[:i]
		}
		if vaultImages[img] {
			return true
		}
	}
	return false
}
