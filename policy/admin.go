package policy

// AdminScope is what the vaultctl-admin identity manages.
type AdminScope struct {
	AuthPath       string   // the Kubernetes auth mount
	KVMounts       []string // KV v2 mounts from the config
	DatabaseMounts []string // database secrets engine mounts from the config
}

// Admin renders the vaultctl-admin policy: its auth mount, ACL policies, the KV and database
// mounts the config names, audit devices, Raft health and leases. Anyone who can get a token for
// the vaultctl ServiceAccount holds these rights, so they stop at what vaultctl manages.
func Admin(s AdminScope) string {
	rules := map[string][]string{
		"sys/auth":                         {"read"},
		"sys/auth/" + s.AuthPath:           {"create", "read", "update", "sudo"},
		"sys/auth/" + s.AuthPath + "/tune": {"read", "update", "sudo"}, // audit_non_hmac_request_keys
		"auth/" + s.AuthPath + "/*":        {"create", "read", "update", "delete", "list"},
		"sys/policies/acl":                 {"list"},
		"sys/policies/acl/*":               {"create", "read", "update", "delete", "list"},
		"sys/capabilities":                 {"update"},
		"sys/rotate":                       {"update", "sudo"}, // vaultctl rotate encryption-key
		"sys/key-status":                   {"read"},           // its term, and status's key age
		"sys/mounts":                       {"read"},
		"sys/audit":                        {"read", "sudo"},
		"sys/audit/*":                      {"create", "read", "update", "delete", "sudo"},
		"sys/storage/raft/configuration":   {"read"},
		"sys/storage/raft/autopilot/*":     {"read", "update"},
		"sys/leases/lookup/*":              {"list", "sudo"},
		"sys/leases/revoke-prefix/*":       {"update", "sudo"},
		// vaultctl leases: a lease's issue and expiry times; the tokens behind Kubernetes-auth
		// logins (listing accessors needs sudo), to find and revoke those whose ServiceAccount
		// is gone.
		// The exact rule also decides LIST sys/leases/lookup/ (Vault tries a list's path
		// without its trailing slash first), so it carries list and sudo too.
		"sys/leases/lookup":          {"update", "list", "sudo"},
		"auth/token/accessors":       {"list", "sudo"},
		"auth/token/lookup-accessor": {"update"},
		"auth/token/revoke-accessor": {"update"},
		// vaultctl doctor: what Vault itself says an agent's token may read, by its accessor.
		"sys/capabilities-accessor": {"update"},
	}
	// upgrade and snapshot: Raft snapshots saved and restored, and the leader's step-down
	// before its restart (Vault counts all three as root paths: sudo).
	for path, caps := range map[string][]string{
		"sys/storage/raft/snapshot":       {"read", "update", "sudo"},
		"sys/storage/raft/snapshot-force": {"update", "sudo"},
		"sys/step-down":                   {"update", "sudo"},
	} {
		rules[path] = caps
	}
	mount := func(m string, caps ...string) {
		rules["sys/mounts/"+m] = []string{"create", "read", "update"}
		rules[m+"/*"] = caps
	}
	for _, m := range s.KVMounts {
		mount(m, "create", "read", "update", "patch", "delete", "list")
	}
	// The databases phase writes connections and roles and rotates each connection's root
	// password once; it never reads credentials (creds/) nor touches static roles.
	for _, m := range s.DatabaseMounts {
		rules["sys/mounts/"+m] = []string{"create", "read", "update"}
		rules[m+"/config/*"] = []string{"create", "read", "update", "delete", "list"}
		rules[m+"/roles/*"] = []string{"create", "read", "update", "delete", "list"}
		rules[m+"/rotate-root/*"] = []string{"update"}
	}
	return renderRules(rules)
}
