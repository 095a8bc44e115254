package lifecycle

import (
	"testing"

	"github.com/vaultctl/vaultctl/config"
)

func imagesOf(t *testing.T, mod func(*config.Config)) map[string]Image {
	t.Helper()
	c := &config.Config{APIVersion: config.APIVersion, Kind: config.Kind}
	c.Vault.Seal.AWSKMS = config.AWSKMS{Region: "us-east-1", KMSKeyID: "alias/vault-unseal-key"}
	if mod != nil {
		mod(c)
	}
	config.ApplyDefaults(c)
	list, err := Images(c)
	if err != nil {
		t.Fatal(err)
	}
	out := map[string]Image{}
	for _, im := range list {
		if _, dup := out[im.Component]; dup {
			t.Errorf("two %s images: %v", im.Component, list)
		}
		out[im.Component] = im
	}
	return out
}

func TestImagesAreWhatTheChartRenders(t *testing.T) {
	def := imagesOf(t, nil)
	for comp, want := range map[string]string{"server": config.DefaultVaultImage, "injector": config.DefaultInjectorImage, "agent": config.DefaultAgentImage} {
		if def[comp].Image != want || def[comp].Overridden {
			t.Errorf("%s = %+v, want %s, not overridden", comp, def[comp], want)
		}
	}
	const digest = "registry.internal:5000/mirror/vault-k8s@sha256:0123456789abcdef0123456789abcdef0123456789abcdef0123456789abcdef"
	mirrored := imagesOf(t, func(c *config.Config) {
		c.Vault.Images = config.Images{Vault: "registry.internal:5000/mirror/vault:1.21.1", Injector: digest, Agent: "registry.internal:5000/mirror/vault:1.21.1"}
	})
	if im := mirrored["injector"]; im.Image != digest || !im.Overridden || im.ConfigKey != "vault.images.injector" {
		t.Errorf("injector = %+v", im)
	}
	if im := mirrored["agent"]; im.Image != "registry.internal:5000/mirror/vault:1.21.1" || !im.Overridden {
		t.Errorf("agent = %+v", im)
	}
}

func TestImagesFollowTheModeAndTheInjector(t *testing.T) {
	ext := imagesOf(t, func(c *config.Config) {
		c.Vault.Mode = config.ModeExternal
		c.Vault.Address = "https://vault.example.com:8200"
	})
	if _, ok := ext["server"]; ok || len(ext) != 2 {
		t.Errorf("external mode runs no server: %v", ext)
	}
	off := false
	noInj := imagesOf(t, func(c *config.Config) { c.Injector.Enabled = &off })
	if _, ok := noInj["agent"]; ok || len(noInj) != 1 {
		t.Errorf("without the injector only the server runs: %v", noInj)
	}
}
