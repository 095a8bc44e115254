package action

import "github.com/vaultctl/vaultctl/lifecycle"

// Images lists every image the config will run, from the charts rendered offline: it needs no
// cluster, so it runs where the mirroring happens (a machine with registry access).
func Images(c *Configuration) ([]lifecycle.Image, error) {
	return lifecycle.Images(c.config())
}
