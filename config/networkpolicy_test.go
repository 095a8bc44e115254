package config_test

import (
	"reflect"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/networkpolicy"
)

// The external-mode warning on networkPolicies.allowedClients says they change nothing, even
// with appEgress: hold networkpolicy.Build to that, so that whoever makes them count in external
// mode is told to change the warning too.
func TestExternalModeAllowedClientsChangeNothing(t *testing.T) {
	const text = `apiVersion: vaultctl.io/v1alpha1
kind: Platform
vault:
  mode: external
  address: https://vault.example.com:8200
  seal: {awskms: {region: us-east-1, kmsKeyId: alias/vault-unseal-key}}
networkPolicies:
  enabled: true
  appEgress: true
  allowedClients: [{namespace: production, podSelector: {app: webapp}}]
audit:
  devices:
    - {path: file, type: file, options: {file_path: stdout}}
    - {path: file2, type: file, options: {file_path: stdout}}
`
	l, err := config.Parse("config.yaml", []byte(text), config.LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	warned := false
	for _, w := range l.Warnings {
		warned = warned || strings.Contains(w.String(), "networkPolicies.allowedClients: change nothing in external mode")
	}
	if !warned {
		t.Fatalf("no warning about allowedClients in external mode: %v", l.Warnings)
	}
	with := networkpolicy.Build(l.Config)
	l.NetworkPolicies.AllowedClients, l.NetworkPolicies.AppEgress = nil, false
	without := networkpolicy.Build(l.Config)
	if !reflect.DeepEqual(with, without) {
		t.Fatalf("allowedClients now change what external mode installs (%d policies with them, %d without): update the warning in validateNetwork", len(with), len(without))
	}
}
