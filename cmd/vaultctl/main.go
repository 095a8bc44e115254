// Command vaultctl takes a Kubernetes estate from base64 Secrets in etcd to short-lived, audited
// secrets in HashiCorp Vault, and keeps it there.
package main

import "os"

func main() {
	os.Exit(run(os.Args[1:], os.Stdin, os.Stdout, os.Stderr))
}
