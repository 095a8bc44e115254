package migrate

import (
	"strings"
	"testing"
	"time"

	"github.com/vaultctl/vaultctl/config"
)

// What --write-config prints loads as config and describes the same policy and role migrate
// writes.
func TestWriteConfigLoadsAsTheSameObjects(t *testing.T) {
	p := &Plan{Namespace: "team-a", Workloads: []WorkloadPlan{
		{Kind: "Deployment", Name: "api", Action: WorkloadMigrate, ServiceAccount: "api", Role: "team-a-deployment-api", Policy: "team-a-deployment-api",
			KVPaths: []string{"secret/team-a/db", "secret/team-a/api-keys", "secret/team-a/db"}},
		{Kind: "Deployment", Name: "legacy", Action: WorkloadManual},
	}}
	d := config.MigrationDefaults{TTL: config.Duration{Duration: time.Hour}, MaxTTL: config.Duration{Duration: 4 * time.Hour}}
	out, err := WriteConfig(p, d)
	if err != nil {
		t.Fatal(err)
	}
	s := string(out)
	for _, want := range []string{"name: team-a-deployment-api", "path: secret/team-a/api-keys", "capabilities: [read]", "serviceAccounts: [api]", "namespaces: [team-a]", "ttl: 1h", "maxTTL: 4h"} {
		if !strings.Contains(s, want) {
			t.Errorf("--write-config output lacks %q:\n%s", want, s)
		}
	}
	if strings.Contains(s, "legacy") || strings.Count(s, "path: secret/team-a/db") != 1 {
		t.Errorf("manual workloads or duplicate paths printed:\n%s", s)
	}
}
