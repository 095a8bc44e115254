package phases

import (
	"context"
	"errors"
	"fmt"
	"os"
	"slices"
	"strconv"
	"strings"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/plural"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Keys of the ownership record the databases phase keeps, each a list of MOUNT/NAME.
const (
	ownedDBConnections = "database-connections"
	ownedDBRoles       = "database-roles"
	// rotatedDBRoots lists the connections whose root password vaultctl rotated. Vault never
	// returns a connection's password, so this record is the only way a later run knows that
	// the bootstrap password is dead and must not be sent again: after rotation a connection
	// is updated without a password, and Vault keeps the one only it knows.
	rotatedDBRoots = "database-root-rotated"
)

// Databases makes dynamic database credentials available: the database secrets engine at each
// mount, each connection (written with the bootstrap admin password, which is then rotated
// once so that only Vault knows the new one), and each role's statements and TTLs. Drift is
// repaired; with --prune it deletes the connections and roles vaultctl created that the config
// dropped. The admin password is read only when a connection must be written before its
// rotation, and never appears in a change, a fact, an error or a checkpoint.
type Databases struct {
	In     DatabasesInputs
	Vault  VaultAdmin
	Kube   kubernetes.Interface // for a password kept in a Kubernetes Secret
	Owners Owners
	Prune  bool
	// Getenv reads passwords given as env; os.Getenv when nil.
	Getenv func(string) string
}

// DatabasesInputs is what the databases phase reads of the config: references to the
// passwords, never their values.
type DatabasesInputs struct {
	Databases []config.Database
	// Namespace holds the ownership record: another namespace is another installation.
	Namespace string
}

func databasesInputs(cfg *config.Config) DatabasesInputs {
	return DatabasesInputs{Databases: cfg.Databases, Namespace: cfg.Vault.Namespace}
}

func (p *Databases) Name() string { return "databases" }
func (p *Databases) Description() string {
	return "database secrets engine, connections with their root password rotated, roles issuing short-lived credentials"
}
func (p *Databases) Inputs() any { return p.In }

func (p *Databases) Check(ctx context.Context) (Diff, error) { return checkObserved(ctx, p.observe) }

// Apply goes in order: a mount before its connections, a connection before its rotation, and
// its roles after it.
func (p *Databases) Apply(ctx context.Context, _ Diff) error { return applyObserved(ctx, p.observe) }

// dbKey names a connection or role in the ownership record.
func dbKey(mount, name string) string { return strings.Trim(mount, "/") + "/" + name }

func splitDBKey(key string) (mount, name string) {
	i := strings.LastIndex(key, "/")
	return key[:i], key[i+1:]
}

func (p *Databases) observe(ctx context.Context) ([]step, []string, error) {
	if len(p.In.Databases) == 0 && !p.Prune {
		// Nothing configured: a run without databases reads nothing more of Vault. With
		// --prune the record is still read, so dropping the last database cleans it up.
		owned, err := p.Owners.list(ctx, ownedDBConnections)
		if err != nil || len(owned) == 0 {
			return nil, nil, err
		}
	}
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	mounts, err := v.ListMounts(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing secrets engines", err)
	}
	var steps []step
	missing := map[string]bool{}
	for _, d := range p.In.Databases {
		m := strings.Trim(d.Mount, "/")
		if missing[m] {
			continue
		}
		info, ok := mounts[m+"/"]
		switch {
		case !ok:
			missing[m] = true
			steps = append(steps, step{change: Change{Create, "database secrets engine at " + m + "/", ""}, apply: func(ctx context.Context) error {
				return v.EnableMount(ctx, m, vault.MountInfo{Type: "database", Description: "dynamic database credentials (managed by vaultctl)"})
			}})
		case info.Type != "database":
			return nil, nil, Fail("use another databases[].mount, or move that engine elsewhere", "%s/ is a %s secrets engine, not database", m, info.Type)
		}
	}
	rotated, err := p.Owners.list(ctx, rotatedDBRoots)
	if err != nil {
		return nil, nil, err
	}

	conns := map[string]config.Database{}
	var wantConns []string
	for _, d := range p.In.Databases {
		k := dbKey(d.Mount, d.Name)
		conns[k] = d
		wantConns = append(wantConns, k)
	}
	connSet := ownedSet{
		kind: ownedDBConnections, noun: "database connection", want: wantConns, owners: p.Owners, prune: p.Prune,
		ensure: func(ctx context.Context, k string) (*step, error) {
			d := conns[k]
			return p.ensureConnection(ctx, v, d, missing[strings.Trim(d.Mount, "/")], slices.Contains(rotated, k))
		},
		remove: func(ctx context.Context, k string) error {
			mount, name := splitDBKey(k)
			if err := v.DeleteDBConnection(ctx, mount, name); err != nil {
				return err
			}
			return p.forgetRotation(ctx, k)
		},
	}
	s, connFacts, err := connSet.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, s...)
	var pending []string
	for _, k := range wantConns {
		if slices.Contains(rotated, k) && !p.connectionMissing(steps, k) {
			continue
		}
		pending = append(pending, k)
		steps = append(steps, step{
			change: Change{Update, "root password of database connection " + k, "rotate-root once: the bootstrap password stops working and only Vault knows the new one"},
			apply:  func(ctx context.Context) error { return p.rotate(ctx, v, k) },
		})
	}

	roles := map[string]map[string]any{}
	var wantRoles []string
	for _, d := range p.In.Databases {
		for _, r := range d.Roles {
			k := dbKey(d.Mount, r.Name)
			wantRoles = append(wantRoles, k)
			roles[k] = dbRoleData(d, r)
		}
	}
	// Database roles have no field for a mark: the ownership record alone decides.
	roleSet := ownedSet{
		kind: ownedDBRoles, noun: "database role", want: wantRoles, owners: p.Owners, prune: p.Prune,
		ensure: func(ctx context.Context, k string) (*step, error) {
			mount, _ := splitDBKey(k)
			return ensureDBRole(ctx, v, k, roles[k], missing[mount])
		},
		remove: func(ctx context.Context, k string) error {
			mount, name := splitDBKey(k)
			return v.DeleteDBRole(ctx, mount, name)
		},
	}
	s, roleFacts, err := roleSet.observe(ctx)
	if err != nil {
		return nil, nil, err
	}
	steps = append(steps, s...)

	facts := []string{fmt.Sprintf("%s, %s", plural.S(len(wantConns), "database connection"), plural.S(len(wantRoles), "database role"))}
	if done := len(wantConns) - len(pending); done > 0 {
		facts = append(facts, fmt.Sprintf("root password rotated by vaultctl on %d of %d connections (their bootstrap password is not needed any more)", done, len(wantConns)))
	}
	return steps, append(append(facts, connFacts...), roleFacts...), nil
}

// connectionMissing reports whether the steps create connection k: one recorded as rotated
// that is gone from Vault is written again with the bootstrap password, so it must be rotated
// again.
func (p *Databases) connectionMissing(steps []step, k string) bool {
	return slices.ContainsFunc(steps, func(s step) bool {
		return s.change.Action == Create && s.change.Object == "database connection "+k
	})
}

// connectionData is what vaultctl writes for a connection, without the password.
func connectionData(d config.Database) map[string]any {
	names := make([]string, len(d.Roles))
	for i, r := range d.Roles {
		names[i] = r.Name
	}
	slices.Sort(names)
	return map[string]any{
		"plugin_name":             d.Plugin,
		"connection_url":          d.ConnectionURL,
		"username":                d.Username,
		"allowed_roles":           strings.Join(names, ","),
		"verify_connection":       true,
		"max_open_connections":    d.MaxOpenConnections,
		"max_idle_connections":    d.MaxIdleConnections,
		"max_connection_lifetime": strconv.FormatInt(int64(d.MaxConnectionLifetime.Seconds()), 10) + "s",
	}
}

// connectionDiff names the fields of the live connection that differ from want.
func connectionDiff(live, want map[string]any) []string {
	details, _ := live["connection_details"].(map[string]any)
	var diffs []string
	if live["plugin_name"] != want["plugin_name"] {
		diffs = append(diffs, "plugin_name")
	}
	for _, k := range []string{"connection_url", "username", "max_open_connections", "max_idle_connections", "max_connection_lifetime"} {
		if fmt.Sprint(details[k]) != fmt.Sprint(want[k]) {
			diffs = append(diffs, k)
		}
	}
	have := stringsOf(live["allowed_roles"])
	slices.Sort(have)
	if strings.Join(have, ",") != want["allowed_roles"] {
		diffs = append(diffs, "allowed_roles")
	}
	if live["verify_connection"] != true {
		diffs = append(diffs, "verify_connection")
	}
	return diffs
}

// ensureConnection returns the step writing connection d when it is missing or differs. Once
// rotated, it is written without a password: Vault keeps the rotated one.
func (p *Databases) ensureConnection(ctx context.Context, v vault.Client, d config.Database, mountMissing, rotated bool) (*step, error) {
	k := dbKey(d.Mount, d.Name)
	var live map[string]any
	if !mountMissing {
		var err error
		if live, err = v.ReadDBConnection(ctx, d.Mount, d.Name); err != nil && !isNotFound(err) {
			return nil, vaultErr("reading database connection "+k, err)
		}
	}
	want := connectionData(d)
	action, detail := Create, d.Plugin+", "+plural.S(len(d.Roles), "allowed role")+", verify_connection"
	if live != nil {
		diffs := connectionDiff(live, want)
		if len(diffs) == 0 {
			return nil, nil
		}
		action, detail = Update, strings.Join(diffs, ", ")
	}
	withPassword := live == nil || !rotated
	return &step{change: Change{action, "database connection " + k, detail}, apply: func(ctx context.Context) error {
		data := want
		var pw string
		if withPassword {
			var err error
			if pw, err = p.adminPassword(ctx, d); err != nil {
				return err
			}
			data = map[string]any{"password": pw}
			for key, val := range want {
				data[key] = val
			}
		}
		if err := v.WriteDBConnection(ctx, d.Mount, d.Name, data); err != nil {
			hint := "Vault checks the connection as it is written (verify_connection): it must reach the database and log in as " + d.Username
			if withPassword && rotated {
				hint += "; vaultctl rotated this connection's password before, so the bootstrap password no longer works: set a new one in the database (ALTER ROLE " + d.Username + " PASSWORD ...) and give it as databases[].password"
			} else if withPassword {
				hint += " with the password from " + describeRef(d.Password)
			}
			return Fail(hint, "%s", secretSafe(vaultErr("writing database connection "+k, err), pw))
		}
		return nil
	}}, nil
}

// rotate has Vault replace the connection user's password, then records that it did, so no
// later run sends the bootstrap password again.
func (p *Databases) rotate(ctx context.Context, v vault.Database, k string) error {
	mount, name := splitDBKey(k)
	if err := v.RotateDBRoot(ctx, mount, name); err != nil {
		return Fail("the connection is written and still uses the bootstrap password; re-run apply to retry the rotation",
			"%s", vaultErr("rotating the root password of database connection "+k, err))
	}
	done, err := p.Owners.list(ctx, rotatedDBRoots)
	if err != nil {
		return err
	}
	if err := p.Owners.set(ctx, rotatedDBRoots, append(done, k)); err != nil {
		return fmt.Errorf("the root password of %s was rotated, but recording it in ConfigMap %s/%s failed (a re-run would try the dead bootstrap password: add %q to its key %s by hand): %w",
			k, p.In.Namespace, OwnershipConfigMap, k, rotatedDBRoots, err)
	}
	return nil
}

func (p *Databases) forgetRotation(ctx context.Context, k string) error {
	done, err := p.Owners.list(ctx, rotatedDBRoots)
	if err != nil || !slices.Contains(done, k) {
		return err
	}
	return p.Owners.set(ctx, rotatedDBRoots, slices.DeleteFunc(done, func(s string) bool { return s == k }))
}

// dbRoleData is the role as vaultctl writes it at MOUNT/roles/NAME.
func dbRoleData(d config.Database, r config.DatabaseRole) map[string]any {
	return map[string]any{
		"db_name":               d.Name,
		"default_ttl":           int64(r.DefaultTTL.Seconds()),
		"max_ttl":               int64(r.MaxTTL.Seconds()),
		"creation_statements":   nonNil(r.CreationStatements),
		"revocation_statements": nonNil(r.RevocationStatements),
	}
}

func nonNil(s []string) []string {
	if s == nil {
		return []string{}
	}
	return s
}

// ensureDBRole returns the step writing role k when it is missing or differs from want.
func ensureDBRole(ctx context.Context, v vault.Database, k string, want map[string]any, mountMissing bool) (*step, error) {
	mount, name := splitDBKey(k)
	var live map[string]any
	if !mountMissing {
		var err error
		if live, err = v.ReadDBRole(ctx, mount, name); err != nil && !isNotFound(err) {
			return nil, vaultErr("reading database role "+k, err)
		}
	}
	action, detail := Create, ""
	if live != nil {
		var diffs []string
		if live["db_name"] != want["db_name"] {
			diffs = append(diffs, "db_name")
		}
		for _, f := range []string{"default_ttl", "max_ttl"} {
			if fmt.Sprint(live[f]) != fmt.Sprint(want[f]) {
				diffs = append(diffs, f)
			}
		}
		for _, f := range []string{"creation_statements", "revocation_statements"} {
			if !slices.Equal(stringsOf(live[f]), want[f].([]string)) {
				diffs = append(diffs, f)
			}
		}
		if len(diffs) == 0 {
			return nil, nil
		}
		action, detail = Update, strings.Join(diffs, ", ")
	} else {
		detail = fmt.Sprintf("credentials for %ds, at most %ds", want["default_ttl"], want["max_ttl"])
	}
	return &step{change: Change{action, "database role " + k, detail}, apply: func(ctx context.Context) error {
		return v.WriteDBRole(ctx, mount, name, want)
	}}, nil
}

func stringsOf(v any) []string {
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		out := make([]string, 0, len(l))
		for _, x := range l {
			out = append(out, fmt.Sprint(x))
		}
		return out
	case string:
		if l == "" {
			return nil
		}
		return strings.Split(l, ",")
	}
	return nil
}

// adminPassword reads the bootstrap admin password from where the config points. Errors name
// the place, never the value.
func (p *Databases) adminPassword(ctx context.Context, d config.Database) (string, error) {
	ref := d.Password
	var pw string
	switch {
	case ref.Env != "":
		getenv := p.Getenv
		if getenv == nil {
			getenv = os.Getenv
		}
		pw = getenv(ref.Env)
	case ref.File != "":
		b, err := os.ReadFile(ref.File)
		if err != nil {
			return "", Fail("write the admin password of "+d.Username+" into it (mode 0600), or point databases[].password elsewhere",
				"database %s: reading the admin password file %s: %v", d.Name, ref.File, errors.Unwrap(err))
		}
		pw = strings.TrimRight(string(b), "\r\n")
	case ref.Secret != nil:
		s := ref.Secret
		if p.Kube == nil {
			return "", fmt.Errorf("database %s: no Kubernetes client to read Secret %s/%s", d.Name, s.Namespace, s.Name)
		}
		sec, err := p.Kube.CoreV1().Secrets(s.Namespace).Get(ctx, s.Name, metav1.GetOptions{})
		if apierrors.IsNotFound(err) {
			return "", Fail("create it: kubectl -n "+s.Namespace+" create secret generic "+s.Name+" --from-literal="+s.Key+"=... (or read it from a file)",
				"database %s: the admin password Secret %s/%s does not exist", d.Name, s.Namespace, s.Name)
		}
		if err != nil {
			return "", fmt.Errorf("database %s: reading the admin password Secret %s/%s: %w", d.Name, s.Namespace, s.Name, err)
		}
		pw = string(sec.Data[s.Key])
	}
	if pw == "" {
		return "", Fail("give the admin password of "+d.Username+" there; it is needed only until vaultctl has rotated it",
			"database %s: the admin password from %s is empty or missing", d.Name, describeRef(ref))
	}
	return pw, nil
}

func describeRef(ref config.SecretRef) string {
	switch {
	case ref.Env != "":
		return "environment variable " + ref.Env
	case ref.File != "":
		return "file " + ref.File
	case ref.Secret != nil:
		return fmt.Sprintf("key %s of Secret %s/%s", ref.Secret.Key, ref.Secret.Namespace, ref.Secret.Name)
	}
	return "nowhere (databases[].password is not set)"
}

// secretSafe removes secret from err's text: a driver may echo what it was given.
func secretSafe(err error, secret string) error {
	if err == nil || secret == "" || !strings.Contains(err.Error(), secret) {
		return err
	}
	return errors.New(strings.ReplaceAll(err.Error(), secret, "[redacted]"))
}
