// Command vaultctl takes a Kubernetes estate from base64 Secrets in etcd to short-lived, audited
// secrets in HashiCorp Vault, and keeps it there.
package main

import (
	"os"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

func main() {
	if sandbox.RunnerMain() {
		return
	}
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
