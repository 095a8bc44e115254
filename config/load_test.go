package config

import (
	"errors"
	"strings"
	"testing"
)

func TestExampleConfigIsValid(t *testing.T) {
	l, err := Load(LoadOptions{Path: "../config.example.yaml", Environ: []string{}})
	if err != nil {
		t.Fatalf("config.example.yaml must validate: %v", err)
	}
	if got := l.Roles[0].TTL.String(); got != "1h" {
		t.Errorf("role ttl = %s, want 1h", got)
	}
	if got := l.Databases[0].Roles[0].MaxTTL.String(); got != "1h" {
		t.Errorf("db role maxTTL = %s, want 1h", got)
	}
	if len(l.Migration.Waves) != 5 {
		t.Errorf("waves = %d, want 5", len(l.Migration.Waves))
	}
	for _, w := range l.Warnings {
		t.Logf("warning: %s", w)
	}
}

// base is a small valid config; each bad case edits one line of it. Line numbers matter: the
// expectations below name them.
const base = `apiVersion: vaultctl.io/v1alpha1
kind: Platform
vault:
  mode: in-cluster
  replicas: 3
  seal:
    awskms:
      region: us-east-1
      kmsKeyId: alias/vault-unseal-key
policies:
  - name: app-db-readonly
    rules:
      - path: secret/production/db-credentials
        capabilities: [read]
roles:
  - name: webapp-production
    serviceAccounts: [webapp-sa]
    namespaces: [production]
    policies: [app-db-readonly]
    ttl: 1h
    maxTTL: 4h
audit:
  devices:
    - {path: file, type: file, options: {file_path: /vault/audit/audit.log}}
    - {path: file2, type: file, options: {file_path: stdout}}
`

func TestBaseIsValid(t *testing.T) {
	if _, err := Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{}}); err != nil {
		t.Fatal(err)
	}
}

func TestBadConfigs(t *testing.T) {
	cases := []struct {
		name     string
		old, new string // replace old with new in base
		want     []string
	}{
		{"unknown top-level key", "kind: Platform", "kind: Platform\nvaults: {}", []string{"config.yaml:3: vaults: unknown key (did you mean \"vault\"?)"}},
		{"typo in nested key", "      kmsKeyId:", "      kmsKeyID:", []string{"config.yaml:9: vault.seal.awskms.kmsKeyID: unknown key (did you mean \"kmsKeyId\"?)"}},
		{"bad kms key id", "kmsKeyId: alias/vault-unseal-key", "kmsKeyId: my-key", []string{"config.yaml:9: vault.seal.awskms.kmsKeyId: must be a key ID, ARN or alias/..."}},
		{"missing kms key id", "      kmsKeyId: alias/vault-unseal-key\n", "", []string{"config.yaml:7: vault.seal.awskms.kmsKeyId: is required"}},
		{"bad region", "region: us-east-1", "region: Frankfurt", []string{"config.yaml:8: vault.seal.awskms.region: must be an AWS region"}},
		{"wrong api version", "vaultctl.io/v1alpha1", "v1", []string{"config.yaml:1: apiVersion: must be vaultctl.io/v1alpha1"}},
		{"wrong kind", "kind: Platform", "kind: Cluster", []string{"config.yaml:2: kind: must be Platform"}},
		{"bad mode", "mode: in-cluster", "mode: hybrid", []string{"config.yaml:4: vault.mode: must be in-cluster or external"}},
		{"external without address", "mode: in-cluster", "mode: external", []string{"config.yaml:3: vault.address: is required when vault.mode is external"}},
		{"even replicas", "replicas: 3", "replicas: 4", []string{"config.yaml:5: vault.replicas: must be odd"}},
		{"replicas not a number", "replicas: 3", "replicas: three", []string{"config.yaml:5: vault.replicas: must be a whole number, got \"three\""}},
		{"replicas as list", "replicas: 3", "replicas: [3]", []string{"config.yaml:5: vault.replicas: must be a whole number"}},
		{"maxTTL below ttl", "maxTTL: 4h", "maxTTL: 30m", []string{"config.yaml:21: roles[0].maxTTL: must be at least ttl (1h), got 30m"}},
		{"bad duration", "ttl: 1h", "ttl: one hour", []string{"config.yaml:20: roles[0].ttl: must be a duration such as 30m or 1h"}},
		{"wildcard binding", "serviceAccounts: [webapp-sa]", "serviceAccounts: [\"*\"]", []string{"config.yaml:17: roles[0].serviceAccounts[0]: wildcard \"*\" binds every match"}},
		{"role names unknown policy", "policies: [app-db-readonly]", "policies: [app-db]", []string{"config.yaml:19: roles[0].policies[0]: policy \"app-db\" is not defined"}},
		{"policy path with data/", "path: secret/production/db-credentials", "path: secret/data/production/db-credentials", []string{"config.yaml:13: policies[0].rules[0].path: write the logical KV path secret/production/db-credentials"}},
		{"unknown capability", "capabilities: [read]", "capabilities: [reed]", []string{"config.yaml:14: policies[0].rules[0].capabilities[0]: unknown capability \"reed\""}},
		{"deny with others", "capabilities: [read]", "capabilities: [read, deny]", []string{"policies[0].rules[0].capabilities: deny overrides every other capability"}},
		{"single audit device", "    - {path: file2, type: file, options: {file_path: stdout}}\n", "", []string{"config.yaml:23: audit.devices: has 1 device(s); configure at least two"}},
		{"duplicate audit path", "path: file2", "path: file", []string{"config.yaml:25: audit.devices[1].path: device \"file\" is listed twice"}},
		{"file device without path", "options: {file_path: stdout}", "options: {}", []string{"config.yaml:25: audit.devices[1].options: a file device needs options.file_path"}},
		{"bad audit type", "{path: file2, type: file,", "{path: file2, type: kafka,", []string{"config.yaml:25: audit.devices[1].type: must be file, syslog or socket"}},
		{"duplicate key", "  replicas: 3", "  replicas: 3\n  replicas: 5", []string{"config.yaml:6: vault.replicas: duplicate key (first set on line 5)"}},
		{"bad yaml", "kind: Platform", "kind: [Platform", []string{"config.yaml:1: invalid YAML: did not find expected"}},
		{"bool as string", "  replicas: 3", "  replicas: 3\n  raft: {autopilotCleanupDeadServers: yes-please}", []string{"config.yaml:6: vault.raft.autopilotCleanupDeadServers: must be true or false"}},
		{"threshold above shares", "  replicas: 3", "  replicas: 3\n  init: {recoveryShares: 1, recoveryThreshold: 2}", []string{"config.yaml:6: vault.init.recoveryThreshold: must be between 1 and recoveryShares (1), got 2"}},
		{"bad irsa arn", "      region: us-east-1", "      region: us-east-1\n      irsaRoleArn: vault-role", []string{"config.yaml:9: vault.seal.awskms.irsaRoleArn: must be an IAM role ARN"}},
		{"createKey needs alias", "kmsKeyId: alias/vault-unseal-key", "kmsKeyId: 1234abcd-12ab-34cd-56ef-1234567890ab\n      createKey: true", []string{"config.yaml:9: vault.seal.awskms.kmsKeyId: must be an alias/NAME when createKey is true"}},
		{"bad namespace", "namespaces: [production]", "namespaces: [Production]", []string{"config.yaml:18: roles[0].namespaces[0]: \"Production\" is not a valid Kubernetes name"}},
		{"policy defined twice", "roles:\n", "  - name: app-db-readonly\n    rules: [{path: secret/x, capabilities: [read]}]\nroles:\n", []string{"config.yaml:15: policies[1].name: policy \"app-db-readonly\" is defined twice"}},
		{"reserved policy name", "  - name: app-db-readonly\n", "  - name: root\n", []string{"config.yaml:11: policies[0].name: \"root\" is built into Vault", "roles[0].policies[0]: policy \"app-db-readonly\" is not defined"}},
		{"bad tls mode", "  replicas: 3", "  replicas: 3\n  tls: {mode: letsencrypt}", []string{"config.yaml:6: vault.tls.mode: must be generate, secret or cert-manager"}},
		{"bad failure policy", "roles:\n", "injector: {failurePolicy: Maybe}\nroles:\n", []string{"config.yaml:15: injector.failurePolicy: must be Ignore or Fail"}},
		{"bad auth path", "roles:\n", "kubernetesAuth: {path: /kubernetes/}\nroles:\n", []string{"config.yaml:15: kubernetesAuth.path: must be a mount path"}},
		{"database with inline password in URL and no ref", "roles:\n", "databases:\n  - name: db\n    connectionURL: postgresql://admin:hunter2@db:5432/app\n    username: admin\n    roles: [{name: r, defaultTTL: 30m, maxTTL: 1h, creationStatements: ['CREATE ROLE \"{{name}}\"']}]\nroles:\n",
			[]string{"config.yaml:17: databases[0].connectionURL: must use {{username}} and {{password}} placeholders", "config.yaml:16: databases[0].password: set exactly one of env, file or secret"}},
		{"waves out of order", "roles:\n", "migration:\n  waves:\n    - {week: 3, name: staging, namespaces: [staging]}\n    - {week: 1, name: pilot, namespaces: [staging]}\nroles:\n",
			[]string{"config.yaml:18: migration.waves[1].week: week 1 comes after week 3", "migration.waves[1].namespaces[0]: namespace \"staging\" is already migrated in migration.waves[0]"}},
		{"unknown gate", "roles:\n", "migration:\n  waves:\n    - {week: 1, name: pilot, gates: [coffee]}\nroles:\n", []string{"config.yaml:17: migration.waves[0].gates[0]: unknown gate \"coffee\""}},
		{"document is a list", base, "- a\n- b\n", []string{"config.yaml:1: the document must be a mapping"}},
		{"empty file", base, "", []string{"config.yaml: file is empty"}},
		{"two documents", base, base + "---\nkind: Platform\n", []string{"config.yaml:26: holds more than one YAML document"}},
		// issue 17 item 6: configs that used to validate although apply could not work.
		{"policy on a kv mount that is not configured", "path: secret/production/db-credentials", "path: kv/production/db-credentials",
			[]string{`config.yaml:13: policies[0].rules[0].path: no KV mount "kv" is configured (kv lists secret)`, "add `- path: kv` under kv"}},
		{"policy on a misspelt kv mount", "path: secret/production/db-credentials", "path: secrets/production/db-credentials",
			[]string{`config.yaml:13: policies[0].rules[0].path: "secrets" is not a KV mount vaultctl knows (kv lists secret): did you mean secret/production/db-credentials?`}},
		{"two waves in one week", "roles:\n", "migration:\n  waves:\n    - {week: 1, name: pilot, namespaces: [tools]}\n    - {week: 1, name: staging, namespaces: [staging]}\nroles:\n",
			[]string{`config.yaml:18: migration.waves[1].week: week 1 is already the week of migration.waves[0] ("pilot"); give each wave a week of its own`}},
		{"pgp key file missing", "  replicas: 3", "  replicas: 3\n  init: {recoveryShares: 1, recoveryThreshold: 1, pgpKeys: [keys/alice.asc]}",
			[]string{"config.yaml:6: vault.init.pgpKeys[0]: PGP public key file keys/alice.asc does not exist"}},
		{"vault CA file missing", "  replicas: 3", "  replicas: 3\n  tls: {caCert: certs/vault-ca.pem}",
			[]string{"config.yaml:6: vault.tls.caCert: CA file certs/vault-ca.pem does not exist"}},
		{"kubeconfig missing", "vault:\n", "cluster:\n  kubeconfig: /nonexistent/kubeconfig\nvault:\n",
			[]string{"config.yaml:4: cluster.kubeconfig: kubeconfig /nonexistent/kubeconfig does not exist"}},
		{"kubeconfig with ~", "vault:\n", "cluster:\n  kubeconfig: ~/.kube/nonexistent-config\nvault:\n",
			[]string{"config.yaml:4: cluster.kubeconfig: kubeconfig ~/.kube/nonexistent-config does not exist (~ is not expanded here: write the full path)"}},
		{"cluster CA file missing", "roles:\n", "kubernetesAuth: {caCert: /nonexistent/ca.pem}\nroles:\n",
			[]string{"config.yaml:15: kubernetesAuth.caCert: cluster CA file /nonexistent/ca.pem does not exist"}},
		{"password env holds a password", "roles:\n", dbWithPasswordEnv(`"hunter2 pa$$!"`) + "roles:\n",
			[]string{"config.yaml:20: databases[0].password.env: must be the name of an environment variable", "looks like a pasted password (not shown)"}},
		{"password env written as $NAME", "roles:\n", dbWithPasswordEnv("${DB_PASSWORD}") + "roles:\n",
			[]string{"config.yaml:20: databases[0].password.env: write the variable's name without $: DB_PASSWORD"}},
		{"vault address with credentials", "  mode: in-cluster", "  mode: external\n  address: https://admin:s3cret@vault.example.com:8200",
			[]string{"config.yaml:5: vault.address: must not hold credentials (the user:password@ part, not shown here)"}},
		{"kms endpoint with credentials", "      region: us-east-1", "      region: us-east-1\n      endpoint: https://AKIA:s3cret@kms.example.com",
			[]string{"config.yaml:9: vault.seal.awskms.endpoint: must not hold credentials"}},
		{"malformed vault address with credentials", "  mode: in-cluster", "  mode: external\n  address: admin:s3cret@vault.example.com:8200",
			[]string{`config.yaml:5: vault.address: must be an http(s) URL such as https://vault.example.com:8200, got "***@vault.example.com:8200"`}},
		// issue 17 item 8: the error says that VAULT_ADDR works too.
		{"external without address or VAULT_ADDR", "mode: in-cluster", "mode: external",
			[]string{"config.yaml:3: vault.address: is required when vault.mode is external: set it here, or export VAULT_ADDR as for the vault CLI"}},
	}
	if len(cases) < 25 {
		t.Fatalf("only %d bad configs", len(cases))
	}
	for _, tc := range cases {
		t.Run(tc.name, func(t *testing.T) {
			if !strings.Contains(base, tc.old) {
				t.Fatalf("test bug: %q not in base", tc.old)
			}
			text := strings.Replace(base, tc.old, tc.new, 1)
			_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}, CheckFiles: true})
			if err == nil {
				t.Fatalf("accepted a bad config:\n%s", text)
			}
			var ve *ValidationError
			if !errors.As(err, &ve) {
				t.Fatalf("error is %T, want *ValidationError: %v", err, err)
			}
			for _, w := range tc.want {
				if !strings.Contains(err.Error(), w) {
					t.Errorf("error lacks %q; got:\n%v", w, err)
				}
			}
		})
	}
}

// dbWithPasswordEnv is a valid databases section whose password.env (line 20 once inserted
// before roles) holds env.
func dbWithPasswordEnv(env string) string {
	return "databases:\n  - name: db\n    connectionURL: postgresql://{{username}}:{{password}}@db:5432/app\n    username: admin\n    password:\n      env: " + env +
		"\n    roles: [{name: r, defaultTTL: 30m, maxTTL: 1h, creationStatements: ['CREATE ROLE \"{{name}}\"']}]\n"
}

func TestInlinePasswordIsNeverEchoed(t *testing.T) {
	text := strings.Replace(base, "roles:\n", "databases:\n  - name: db\n    password: hunter2-very-secret\nroles:\n", 1)
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	if err == nil || !strings.Contains(err.Error(), "databases[0].password: must be a mapping") {
		t.Fatalf("want a mapping error for the inline password, got %v", err)
	}
	if strings.Contains(err.Error(), "hunter2") {
		t.Fatalf("the error echoes the secret: %v", err)
	}
}

func TestAllErrorsReportedAtOnce(t *testing.T) {
	text := strings.NewReplacer("replicas: 3", "replicas: 2", "region: us-east-1", "region: moon", "maxTTL: 4h", "maxTTL: 1m").Replace(base)
	_, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	var ve *ValidationError
	if !errors.As(err, &ve) || len(ve.Problems) != 3 {
		t.Fatalf("want 3 problems, got %v", err)
	}
	// Sorted by line so the output reads top to bottom.
	for i, line := range []int{5, 8, 21} {
		if ve.Problems[i].Line != line {
			t.Errorf("problem %d at line %d, want %d", i, ve.Problems[i].Line, line)
		}
	}
}

func TestEnvOverridesFileAndNamesTheVariable(t *testing.T) {
	l, err := Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{"VAULTCTL_VAULT_NAMESPACE=vault-system", "VAULTCTL_VAULT_SEAL_AWSKMS_ENDPOINT=http://127.0.0.1:9999"}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Vault.Namespace != "vault-system" || l.Vault.Seal.AWSKMS.Endpoint != "http://127.0.0.1:9999" {
		t.Fatalf("env not applied: %+v", l.Vault)
	}
	_, err = Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{"VAULTCTL_VAULT_REPLICAS=two"}})
	if err == nil || !strings.Contains(err.Error(), "env VAULTCTL_VAULT_REPLICAS: vault.replicas: must be a whole number") {
		t.Fatalf("want env-named error, got %v", err)
	}
	_, err = Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{"VAULTCTL_VAULT_REPLICAS=4"}})
	if err == nil || !strings.Contains(err.Error(), "env VAULTCTL_VAULT_REPLICAS: vault.replicas: must be odd") {
		t.Fatalf("semantic error on an env override must name the variable, got %v", err)
	}
}

func TestAnchorsAndMergeKeys(t *testing.T) {
	text := base + "x-ttl: &short 30m\n"
	if _, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}}); err == nil {
		t.Fatal("unknown top-level key with an anchor must be rejected")
	}
	text = strings.Replace(base, "    ttl: 1h\n    maxTTL: 4h\n", "    <<: &ttls {ttl: 1h, maxTTL: 4h}\n", 1)
	l, err := Parse("config.yaml", []byte(text), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Roles[0].MaxTTL.String() != "4h" {
		t.Fatalf("merge key not applied: %s", l.Roles[0].MaxTTL)
	}
}

func TestDefaults(t *testing.T) {
	l, err := Parse("config.yaml", []byte(base), LoadOptions{Environ: []string{}})
	if err != nil {
		t.Fatal(err)
	}
	if l.Vault.Namespace != "vault" || l.KubernetesAuth.Path != "kubernetes" || len(l.KV) != 1 || l.KV[0].Path != "secret" || !l.InjectorEnabled() {
		t.Fatalf("defaults missing: %+v", l.Config)
	}
}

func TestJSONSchemaCoversEveryKey(t *testing.T) {
	b, err := JSONSchema()
	if err != nil {
		t.Fatal(err)
	}
	s := string(b)
	for _, l := range overridableLeaves(configType, "", nil) {
		last := l.path[strings.LastIndex(l.path, ".")+1:]
		if !strings.Contains(s, "\""+last+"\"") {
			t.Errorf("schema lacks %s", l.path)
		}
	}
	if !strings.Contains(s, `"additionalProperties": false`) {
		t.Error("schema must reject unknown keys like the loader does")
	}
}
