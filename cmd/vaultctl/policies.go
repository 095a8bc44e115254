package main

import "github.com/spf13/cobra"

func newPoliciesCmd(opts *rootOptions) *cobra.Command {
	cmd := &cobra.Command{
		Use:   "policies",
		Short: "Review the policies and roles vaultctl manages",
		Args:  noArgsButSubcommands,
	}
	return cmd
}
