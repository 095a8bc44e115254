package main

import (
	"bytes"
	"encoding/json"
	"strings"
	"testing"

	"github.com/vaultctl/vaultctl/migrate"
)

// Usage mistakes are exit 2 before any config is read or cluster contacted, and -o json still
// prints one document.
func TestMigrateNamespaceUsage(t *testing.T) {
	for _, tc := range []struct {
		name string
		args []string
		want string
	}{
		{"no namespace", []string{"migrate", "namespace", "--plan"}, "takes one namespace"},
		{"not a namespace name", []string{"migrate", "namespace", "Shop_1", "--plan"}, "not a namespace name"},
		{"no --yes without a terminal", []string{"migrate", "namespace", "shop"}, "pass --yes to run it without a terminal"},
		{"--purge without --rollback", []string{"migrate", "namespace", "shop", "--yes", "--purge"}, "--purge goes with --rollback"},
		{"--rollback with --prune", []string{"migrate", "namespace", "shop", "--yes", "--rollback", "--prune"}, "cannot be combined"},
		{"bad --entrypoint", []string{"migrate", "namespace", "shop", "--plan", "--entrypoint", "Deployment/web:app=/bin/web"}, "must be a JSON list of strings"},
		{"bad --workload", []string{"migrate", "namespace", "shop", "--plan", "--workload", "Rollout/web"}, "kind Rollout is not one migrate rewrites"},
		{"unknown subcommand", []string{"migrate", "namespaces", "shop"}, `unknown command "namespaces"`},
	} {
		t.Run(tc.name, func(t *testing.T) {
			for _, output := range []string{"text", "json"} {
				var stdout, stderr bytes.Buffer
				// The config file does not exist: nothing here may get as far as reading it.
				args := append(tc.args, "-c", "/nonexistent/vaultctl.yaml", "-o", output)
				if code := run(args, strings.NewReader(""), &stdout, &stderr); code != exitUsage {
					t.Fatalf("%s: exit %d, want %d\nstdout: %s\nstderr: %s", output, code, exitUsage, stdout.String(), stderr.String())
				}
				if !strings.Contains(stderr.String(), tc.want) {
					t.Errorf("%s: stderr %q lacks %q", output, stderr.String(), tc.want)
				}
				if output == "json" {
					var doc struct {
						OK    bool   `json:"ok"`
						Error string `json:"error"`
					}
					dec := json.NewDecoder(&stdout)
					if err := dec.Decode(&doc); err != nil || doc.OK || !strings.Contains(doc.Error, tc.want) || dec.More() {
						t.Errorf("json: want one failure document naming %q, got %v %+v", tc.want, err, doc)
					}
				}
			}
		})
	}
}

func TestMigrateNamespaceHelpTeaches(t *testing.T) {
	var stdout, stderr bytes.Buffer
	if code := run([]string{"migrate", "namespace", "--help"}, strings.NewReader(""), &stdout, &stderr); code != exitOK {
		t.Fatalf("exit %d: %s", code, stderr.String())
	}
	for _, want := range []string{"Kept as Kubernetes Secrets", "image pull", "Helm", "manual", "--entrypoint KIND/NAME:CONTAINER", "migration.entrypoints", "0  nothing to do", "3  --plan found work to do", "2  bad usage"} {
		if !strings.Contains(stdout.String(), want) {
			t.Errorf("help lacks %q", want)
		}
	}
}

func TestPrintMigratePlan(t *testing.T) {
	p := &migrate.Plan{Namespace: "shop",
		Secrets: []migrate.SecretPlan{
			{Name: "db", Action: migrate.SecretMigrate, Reason: "used by 1 workload", KVPath: "secret/shop/db", Keys: []string{"password", "username"}, Consumers: []string{"Deployment/web"}},
			{Name: "regcred", Action: migrate.SecretKeep, Reason: "image pull Secret", Keys: []string{".dockerconfigjson"}},
		},
		Workloads: []migrate.WorkloadPlan{
			{Kind: "Deployment", Name: "web", Action: migrate.WorkloadMigrate, ServiceAccount: "web", CreateServiceAccount: true, Role: "shop-deployment-web", Changes: []string{"create policy shop-deployment-web"}, Warnings: []string{"its image must have /bin/sh"}},
			{Kind: "Deployment", Name: "worker", Action: migrate.WorkloadManual, ServiceAccount: "default", Manual: []string{"container run sets no command"}},
		},
		Problems: []string{"Job/x: Secret gone does not exist"},
	}
	var b bytes.Buffer
	if err := printMigratePlan(&b, p); err != nil {
		t.Fatal(err)
	}
	out := b.String()
	for _, want := range []string{
		"Namespace shop: 2 Secrets (1 to migrate, 1 kept), 2 workloads (1 to migrate, 1 manual, 0 to skip)",
		"SECRET", "secret/shop/db", "image pull Secret",
		"WORKLOAD", "web (new)", "shop-deployment-web",
		"Deployment/worker (manual)\n  manual:   container run sets no command",
		"  warning:  its image must have /bin/sh",
		"problem: Job/x: Secret gone does not exist",
		"nothing was changed",
	} {
		if !strings.Contains(out, want) {
			t.Errorf("text plan lacks %q:\n%s", want, out)
		}
	}

	b.Reset()
	done := &migrate.Plan{Namespace: "shop", Secrets: p.Secrets[1:], Workloads: []migrate.WorkloadPlan{{Kind: "Deployment", Name: "web", Action: migrate.WorkloadSkip, ServiceAccount: "default", Changes: []string{"nothing to change: it reads only Secrets that stay in Kubernetes (regcred)"}}}}
	if err := printMigratePlan(&b, done); err != nil {
		t.Fatal(err)
	}
	if !strings.Contains(b.String(), "Nothing to do") || !strings.Contains(b.String(), "stay in Kubernetes (regcred)") {
		t.Errorf("a migrated namespace:\n%s", b.String())
	}
}
