package main

import (
	"fmt"
	"strings"
	"text/tabwriter"

	"github.com/spf13/cobra"

	"github.com/vaultctl/vaultctl/action"
	"github.com/vaultctl/vaultctl/lifecycle"
)

func newImagesCmd(opts *rootOptions) *cobra.Command {
	return &cobra.Command{
		Use:   "images",
		Short: "List every container image the config will run (server, injector, agent), for mirroring",
		Long: `Images renders the charts vaultctl installs for this config, offline (no cluster needed), and
lists every image in them: the Vault server (in-cluster mode), the injector and the Vault Agent
image the injector adds to workloads (when the injector is enabled). Each row names the config
key that overrides it and whether the config does. For an air-gapped install, mirror each image
into your registry, set vault.images.* to the mirrored names and run images again to check.

-o json prints {"images": [{"component", "image", "configKey", "default", "overridden", "where"}]}.`,
		Example: `  vaultctl images
  vaultctl images -o json | jq -r '.images[].image' | sort -u   # the list to mirror`,
		Args: cobra.NoArgs,
		RunE: func(cmd *cobra.Command, _ []string) error {
			c, _, warnings, err := commandConfiguration(cmd, opts)
			if err != nil {
				return err
			}
			images, err := action.Images(c)
			if err != nil {
				return withWarnings(exitFailed, err, warnings)
			}
			if images == nil {
				images = []lifecycle.Image{}
			}
			if opts.Output == "json" {
				return writeJSON(opts.stdout, map[string]any{"command": commandName(cmd), "ok": true, "images": images, "warnings": warnings})
			}
			tw := tabwriter.NewWriter(opts.stdout, 0, 4, 2, ' ', 0)
			fmt.Fprintln(tw, "COMPONENT\tIMAGE\tSET BY\tUSED BY")
			for _, im := range images {
				by := im.ConfigKey + " (default)"
				if im.Overridden {
					by = im.ConfigKey + " (overridden; default " + im.Default + ")"
				}
				fmt.Fprintf(tw, "%s\t%s\t%s\t%s\n", im.Component, im.Image, by, strings.Join(im.Where, ", "))
			}
			return tw.Flush()
		},
	}
}
