package migrate

import (
	"context"
	"encoding/json"
	"fmt"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	authenticationv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
	"github.com/vaultctl/vaultctl/policy"
)

// `migrate database` switches one workload from a static database password (a Kubernetes
// Secret it reads, or a KV entry its injector templates read) to dynamic credentials from
// MOUNT/creds/ROLE. The files and env names the application reads stay the same; only where
// their values come from changes: the templates read .Data.username and .Data.password of the
// database role's credentials. It reuses the namespace migration's pieces: Rewrite for a
// workload still on Secrets, the backup, the access objects, the proof's TokenRequest and
// login, SetTemplate and WaitRollout.

// Credential fields of the database engine's creds/ response.
const (
	DBUsername = "username"
	DBPassword = "password"
)

// DatabaseOptions are what migrate database switches and to what.
type DatabaseOptions struct {
	Namespace string
	Workload  WorkloadID
	Mount     string // the database engine's mount, "database"
	Role      string // the database role whose credentials the workload gets
	// Source is the Secret name, or the logical KV path ("secret/shop/db"), holding the static
	// credentials; empty means the one the workload reads that has a password key.
	Source string
	// UsernameKey and PasswordKey are the source's keys holding them; detected when empty.
	UsernameKey, PasswordKey string
	AuthMount                string // the Kubernetes auth mount, "kubernetes"
	KVMounts                 []string
	Defaults                 config.MigrationDefaults
	Entrypoints              map[string][]string // container -> argv, for env read from a Secret
}

// DatabasePlan is what migrate database will do to the workload. It holds names only.
type DatabasePlan struct {
	Namespace      string            `json:"namespace"`
	Workload       string            `json:"workload"`
	ServiceAccount string            `json:"serviceAccount"`
	From           string            `json:"from"` // "Secret db" or "KV secret/data/shop/db"
	Keys           map[string]string `json:"keys"` // source key -> username | password
	CredsPath      string            `json:"credsPath"`
	Role           string            `json:"role"`     // the Kubernetes auth role it logs in with
	Policy         string            `json:"policy"`   // the policy granting read on CredsPath
	Policies       []string          `json:"policies"` // the role's token policies
	Changes        []string          `json:"changes"`
	Notes          []string          `json:"notes"`
	Warnings       []string          `json:"warnings"`
	// Done says the live template is already the target: a run has nothing to patch.
	Done bool `json:"done"`

	Target    corev1.PodTemplateSpec `json:"-"`
	PolicyHCL string                 `json:"-"`
	RoleData  map[string]any         `json:"-"`
	authMount string
}

// DatabaseVault is what planning and switching need of Vault (as vaultctl-admin).
type DatabaseVault interface {
	vault.ACL
	vault.AuthRoles
	vault.KV
}

// injector annotations migrate database adds (vault-k8s agent-inject/agent/annotations.go).
const annCacheEnable = annPrefix + "agent-cache-enable"

// Init-versus-sidecar credentials (vault-k8s#125), as the plan explains it.
const (
	noteCache = "the agent's init container and its sidecar would each read " + "%s" + " and get credentials of their own: the application starts with the init container's, which Vault revokes when that agent's token expires, while the sidecar renews only its own. agent-cache-enable makes both share one cache (persisted in the pod), so the credentials the application starts with are the ones the sidecar renews"
	noteJob   = "a Job runs the agent's init container only (agent-pre-populate-only): the credentials it renders are not renewed, so they must outlive the Job (the role's default TTL)"
)

var (
	// withSecret is the opening of a consul-template block reading one path.
	withSecret = regexp.MustCompile(`\{\{ with secret "([^"]+)" \}\}`)
	// kvValue is a KV v2 value expression vaultctl's templates use.
	kvValue = regexp.MustCompile(`\{\{ index \.Data\.data "((?:[^"\\]|\\.)*)"`)
)

// PlanDatabase reads the workload and the auth role it logs in with, and plans the switch. It
// changes nothing.
func PlanDatabase(ctx context.Context, kube kubernetes.Interface, v vault.AuthRoles, o DatabaseOptions) (*DatabasePlan, error) {
	id := o.Workload
	live, err := ReadTemplate(ctx, kube, o.Namespace, id)
	if err != nil {
		return nil, err
	}
	creds := config.CredsPath(o.Mount, o.Role)
	p := &DatabasePlan{Namespace: o.Namespace, Workload: id.String(), CredsPath: creds, authMount: o.AuthMount, Changes: []string{}, Notes: []string{}, Warnings: []string{}}
	p.ServiceAccount = live.Spec.ServiceAccountName
	if p.ServiceAccount == "" || p.ServiceAccount == DefaultServiceAccount {
		return nil, fmt.Errorf("%s runs as ServiceAccount default: a role bound to it would give every pod in %s the database credentials; give it a ServiceAccount of its own first (vaultctl migrate namespace %s --workload %s does)", id, o.Namespace, o.Namespace, id)
	}

	target := *live.DeepCopy()
	oldRole := live.Annotations[annRole]
	switch {
	case readsCreds(live.Annotations, creds):
		// Switched by an earlier run: the plan is the live template, with access kept.
		p.From = "the live template (already reads " + creds + ")"
	case live.Annotations[annInject] == "true" && readsKVTemplates(live.Annotations):
		if err := switchInjected(&target, p, o); err != nil {
			return nil, err
		}
	default:
		if err := switchSecret(ctx, kube, live, &target, p, o); err != nil {
			return nil, err
		}
	}

	// A role and a policy of its own: the namespace migration's role keeps granting what it
	// granted, and its re-runs do not take the database path away.
	p.Role = boundedName(VaultName(o.Namespace, id)+"-db", 128)
	p.Policy = p.Role
	p.PolicyHCL = policy.Render(config.Policy{Name: p.Policy, Rules: []config.PolicyRule{{Path: creds, Capabilities: []string{"read"}}}}, o.KVMounts)
	p.Policies = []string{p.Policy}
	audience := ""
	if oldRole != "" {
		cur, err := v.ReadRole(ctx, o.AuthMount, oldRole)
		if err != nil && !vault.IsNotFound(err) {
			return nil, fmt.Errorf("reading the role %s the workload logs in with (auth/%s): %w", oldRole, o.AuthMount, err)
		}
		// Its other templates keep reading what the old role's policies grant.
		for _, pol := range anyStrings(cur["token_policies"]) {
			if pol != p.Policy && pol != "default" && !slices.Contains(p.Policies, pol) {
				p.Policies = append(p.Policies, pol)
			}
		}
		audience, _ = cur["audience"].(string)
	}
	sort.Strings(p.Policies[1:])
	p.RoleData = policy.RoleData(config.Role{Name: p.Role, ServiceAccounts: []string{p.ServiceAccount}, Namespaces: []string{o.Namespace},
		Policies: p.Policies, TTL: o.Defaults.TTL, MaxTTL: o.Defaults.MaxTTL, Audience: audience})

	target.Annotations[annRole] = p.Role
	job := id.Kind == KindJob || id.Kind == KindCronJob
	if job {
		target.Annotations[annPrePopulateOnly] = "true"
		p.Notes = append(p.Notes, noteJob)
	} else {
		target.Annotations[annCacheEnable] = "true"
		p.Notes = append(p.Notes, fmt.Sprintf(noteCache, creds))
		p.Changes = append(p.Changes, "annotations: agent-cache-enable, so the init container and the sidecar share one set of credentials (vault-k8s#125)")
	}
	p.Changes = append(p.Changes,
		fmt.Sprintf("annotations: logs in with role %s (was %s)", p.Role, cmpOr(oldRole, "none")),
		fmt.Sprintf("policy %s: read on %s (explicit deny beside it)", p.Policy, creds),
		fmt.Sprintf("role auth/%s/role/%s: ServiceAccount %s/%s, policies %s, ttl %s, max_ttl %s", o.AuthMount, p.Role, o.Namespace, p.ServiceAccount, strings.Join(p.Policies, ", "), o.Defaults.TTL, o.Defaults.MaxTTL))
	p.Target = target
	p.Done = TemplateHash(target) == TemplateHash(*live)
	return p, nil
}

// readsCreds reports whether an injector template reads creds.
func readsCreds(ann map[string]string, creds string) bool {
	for k, v := range ann {
		if strings.HasPrefix(k, annTemplate) && strings.Contains(v, "secret "+strconv.Quote(creds)) {
			return true
		}
	}
	return false
}

// readsKVTemplates reports whether any injector template reads a KV v2 value.
func readsKVTemplates(ann map[string]string) bool {
	for k, v := range ann {
		if strings.HasPrefix(k, annTemplate) && kvValue.MatchString(v) {
			return true
		}
	}
	return false
}

// keyRoles maps each source key to username or password: the flags, else the key's name.
func keyRoles(keys []string, o DatabaseOptions, from string) (map[string]string, error) {
	out := map[string]string{}
	pick := func(flag, given, field string, names []string) error {
		if given != "" {
			if !slices.Contains(keys, given) {
				return fmt.Errorf("%s has no key %q (%s); its keys are %s", from, given, flag, strings.Join(keys, ", "))
			}
			out[given] = field
			return nil
		}
		var found []string
		for _, k := range keys {
			norm := strings.ToLower(strings.NewReplacer("_", "", "-", "", ".", "").Replace(k))
			for _, n := range names {
				if norm == n || strings.HasSuffix(norm, n) && field == DBPassword {
					found = append(found, k)
					break
				}
			}
		}
		if len(found) != 1 {
			return fmt.Errorf("cannot tell which key of %s holds the %s (keys: %s): name it with %s", from, field, strings.Join(keys, ", "), flag)
		}
		out[found[0]] = field
		return nil
	}
	if err := pick("--password-key", o.PasswordKey, DBPassword, []string{"password", "passwd", "pass", "pwd"}); err != nil {
		return nil, err
	}
	if err := pick("--username-key", o.UsernameKey, DBUsername, []string{"username", "user", "dbuser", "dbusername", "pguser", "postgresuser", "login"}); err != nil {
		return nil, err
	}
	return out, nil
}

// switchSecret plans a workload that reads the credentials from a Kubernetes Secret: Rewrite
// turns its references into injector templates as for a namespace migration, then those
// templates read the database credentials instead of a KV entry. Every key the workload reads
// of that Secret must be the username or the password: the credentials hold nothing else.
func switchSecret(ctx context.Context, kube kubernetes.Interface, live *corev1.PodTemplateSpec, target *corev1.PodTemplateSpec, p *DatabasePlan, o DatabaseOptions) error {
	id := o.Workload
	var names []string
	for _, r := range PodReferences(&live.Spec) {
		if r.Kind != RefImagePull && !slices.Contains(names, r.Secret) {
			names = append(names, r.Secret)
		}
	}
	var chosen *corev1.Secret
	var candidates []string
	for _, n := range names {
		if o.Source != "" && n != o.Source {
			continue
		}
		s, err := kube.CoreV1().Secrets(o.Namespace).Get(ctx, n, metav1.GetOptions{})
		if err != nil {
			return fmt.Errorf("reading Secret %s/%s that %s reads: %w", o.Namespace, n, id, err)
		}
		if _, err := keyRoles(sortedKeys(s.Data), DatabaseOptions{UsernameKey: o.UsernameKey, PasswordKey: o.PasswordKey}, "Secret "+n); err == nil || o.Source != "" {
			candidates = append(candidates, n)
			chosen = s
		}
	}
	switch {
	case o.Source != "" && chosen == nil:
		return fmt.Errorf("%s reads no Secret %s (it reads: %s)", id, o.Source, strings.Join(names, ", "))
	case len(candidates) == 0:
		return fmt.Errorf("%s reads no Secret with a username and a password key (it reads: %s): name the Secret with --from and its keys with --username-key and --password-key", id, strings.Join(names, ", "))
	case len(candidates) > 1:
		return fmt.Errorf("%s reads several Secrets with database credentials (%s): name one with --from", id, strings.Join(candidates, ", "))
	}
	keys := sortedKeys(chosen.Data)
	from := "Secret " + chosen.Name
	roles, err := keyRoles(keys, o, from)
	if err != nil {
		return err
	}
	var others []string
	for _, k := range keys {
		if roles[k] == "" {
			others = append(others, k)
		}
	}
	if len(others) > 0 {
		return fmt.Errorf("%s holds %s besides the username and password, and database credentials hold nothing else: move the Secret to KV first (vaultctl migrate namespace %s --workload %s), then switch its username and password with migrate database", from, strings.Join(others, ", "), o.Namespace, id)
	}
	// Rewrite reads a KV entry; a placeholder path stands for the credentials and is replaced
	// below by the creds path, each key's value by its credential field.
	const placeholderMount = "vaultctl-db-placeholder"
	src := Source{Secret: chosen.Name, Mount: placeholderMount, KVPath: placeholderMount + "/" + chosen.Name, Keys: keys}
	res, err := Rewrite(RewriteInput{Workload: id, Template: *live, Role: "vaultctl-db-placeholder-role", AuthPath: "auth/" + strings.Trim(o.AuthMount, "/"),
		Sources: map[string]Source{chosen.Name: src}, Entrypoints: o.Entrypoints, Job: id.Kind == KindJob || id.Kind == KindCronJob})
	if err != nil {
		return fmt.Errorf("rewriting %s: %w", id, err)
	}
	switch res.Action {
	case WorkloadManual:
		return fmt.Errorf("%s cannot be switched through the agent as it is: %s", id, strings.Join(res.Manual, "; "))
	case WorkloadSkip:
		return fmt.Errorf("%s reads nothing of Secret %s that the agent would render", id, chosen.Name)
	}
	*target = res.Template
	readPath := placeholderMount + "/data/" + chosen.Name
	for k, v := range target.Annotations {
		switch {
		case strings.HasPrefix(k, annSecret) && v == readPath:
			target.Annotations[k] = p.CredsPath
		case strings.HasPrefix(k, annTemplate):
			nv, err := credsTemplate(v, readPath, p.CredsPath, roles, true)
			if err != nil {
				return err
			}
			target.Annotations[k] = nv
		}
	}
	p.From, p.Keys = from, roles
	for _, c := range res.Changes {
		if !strings.HasPrefix(c, "annotations: the Vault Agent Injector renders") {
			p.Changes = append(p.Changes, c)
		}
	}
	p.Changes = append([]string{fmt.Sprintf("the agent renders what %s read from %s (same files and variables) from %s", id, from, p.CredsPath)}, p.Changes...)
	p.Warnings = append(p.Warnings, res.Warnings...)
	return nil
}

// switchInjected plans a workload already on the injector whose templates read a KV entry
// with the credentials: each value of a mapped key is read from the creds path instead; the
// entry's other keys (host, port...) stay read from KV.
func switchInjected(target *corev1.PodTemplateSpec, p *DatabasePlan, o DatabaseOptions) error {
	// Which KV paths the templates read, and the keys of each.
	keysOf := map[string][]string{}
	for k, v := range target.Annotations {
		if !strings.HasPrefix(k, annTemplate) {
			continue
		}
		for _, b := range templateBlocks(v) {
			for _, m := range kvValue.FindAllStringSubmatch(b.body, -1) {
				key, _ := strconv.Unquote(`"` + m[1] + `"`)
				if !slices.Contains(keysOf[b.path], key) {
					keysOf[b.path] = append(keysOf[b.path], key)
				}
			}
		}
	}
	var readPath string
	if o.Source != "" {
		mount := config.KVMountOf(o.KVMounts, o.Source)
		if mount == "" {
			return fmt.Errorf("--from %s: the workload's templates read KV; give the entry's logical path on a kv mount (%s), e.g. %s/%s/db", o.Source, strings.Join(o.KVMounts, ", "), cmpOr(strings.Join(o.KVMounts, ""), "secret"), o.Namespace)
		}
		readPath = mount + "/data/" + strings.TrimPrefix(strings.TrimPrefix(o.Source, mount), "/")
		if keysOf[readPath] == nil {
			return fmt.Errorf("%s's templates do not read %s (they read %s)", o.Workload, o.Source, strings.Join(sortedKeys(keysOf), ", "))
		}
	} else {
		var found []string
		for path, keys := range keysOf {
			if _, err := keyRoles(keys, o, "KV "+path); err == nil {
				found = append(found, path)
			}
		}
		sort.Strings(found)
		switch len(found) {
		case 0:
			return fmt.Errorf("%s's templates read no KV entry with a username and a password key (they read %s): name it with --from and its keys with --username-key and --password-key", o.Workload, strings.Join(sortedKeys(keysOf), ", "))
		case 1:
			readPath = found[0]
		default:
			return fmt.Errorf("%s's templates read several KV entries with credentials (%s): name one with --from", o.Workload, strings.Join(found, ", "))
		}
	}
	from := "KV " + readPath
	keys := keysOf[readPath]
	sort.Strings(keys)
	roles, err := keyRoles(keys, o, from)
	if err != nil {
		return err
	}
	for k, v := range target.Annotations {
		if strings.HasPrefix(k, annTemplate) {
			nv, err := credsTemplate(v, readPath, p.CredsPath, roles, false)
			if err != nil {
				return err
			}
			target.Annotations[k] = nv
		}
	}
	p.From, p.Keys = from, roles
	p.Changes = append(p.Changes, fmt.Sprintf("templates: the values of %s from %s are read from %s (.Data.username, .Data.password); the files and variables keep their names", strings.Join(sortedKeys(roles), ", "), from, p.CredsPath))
	return nil
}

// templateBlock is one `{{ with secret "PATH" }} ... {{ end }}` of a template.
type templateBlock struct {
	path        string
	start, end  int // of the whole block in the template
	body        string
	bodyStart   int
	openingText string
}

// templateBlocks splits the blocks vaultctl's templates consist of (they never nest).
func templateBlocks(t string) []templateBlock {
	var out []templateBlock
	for _, m := range withSecret.FindAllStringSubmatchIndex(t, -1) {
		rest := t[m[1]:]
		e := strings.Index(rest, "{{ end }}")
		if e < 0 {
			continue
		}
		out = append(out, templateBlock{path: t[m[2]:m[3]], start: m[0], end: m[1] + e + len("{{ end }}"), body: rest[:e], bodyStart: m[1], openingText: t[m[0]:m[1]]})
	}
	return out
}

// credsTemplate rewrites the blocks of t that read readPath so that mapped keys come from
// creds. whole: every key of the block is mapped and the block reads creds instead (the
// Secret case); otherwise each mapped value is read from creds in a block of its own, nested
// where it stood, and the KV entry's other keys stay.
func credsTemplate(t, readPath, creds string, roles map[string]string, whole bool) (string, error) {
	blocks := templateBlocks(t)
	var b strings.Builder
	last := 0
	for _, bl := range blocks {
		if bl.path != readPath {
			continue
		}
		b.WriteString(t[last:bl.start])
		body := bl.body
		var err error
		body = kvValue.ReplaceAllStringFunc(body, func(m string) string {
			key, uerr := strconv.Unquote(`"` + kvValue.FindStringSubmatch(m)[1] + `"`)
			field := roles[key]
			switch {
			case uerr != nil || field == "" && whole:
				err = fmt.Errorf("the template reads key %q of %s, which is neither the username nor the password", key, readPath)
				return m
			case field == "":
				return m
			case whole:
				return "{{ .Data." + field
			}
			return "{{ with secret " + strconv.Quote(creds) + " }}{{ .Data." + field
		})
		if err != nil {
			return "", err
		}
		if !whole {
			// Each nested value's action closes with its own {{ end }}.
			body = closeNested(body, creds)
			b.WriteString(bl.openingText + body + "{{ end }}")
		} else {
			b.WriteString("{{ with secret " + strconv.Quote(creds) + " }}" + body + "{{ end }}")
		}
		last = bl.end
	}
	b.WriteString(t[last:])
	return b.String(), nil
}

// closeNested appends {{ end }} after each action that opened a nested creds block.
func closeNested(body, creds string) string {
	open := "{{ with secret " + strconv.Quote(creds) + " }}{{ .Data."
	var b strings.Builder
	for {
		i := strings.Index(body, open)
		if i < 0 {
			b.WriteString(body)
			return b.String()
		}
		j := strings.Index(body[i+len(open):], "}}")
		if j < 0 {
			b.WriteString(body)
			return b.String()
		}
		stop := i + len(open) + j + 2
		b.WriteString(body[:stop] + "{{ end }}")
		body = body[stop:]
	}
}

// DatabaseProofClient is what the proof does as the workload.
type DatabaseProofClient interface {
	Login(ctx context.Context, mount string, body map[string]any) (string, error)
	SetToken(token string)
	GenerateDBCredentials(ctx context.Context, mount, role string) (*vault.Credentials, error)
	CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error)
	RevokeSelf(ctx context.Context) error
}

// ProveDatabase shows, before the workload is touched, that its ServiceAccount's token logs
// in with the new role, reads credentials at the creds path (Vault creates a database user,
// so the connection works), and is denied a sibling role's credentials. The token is revoked
// at the end, and the proof's credentials with it. Errors hold no token and no credential.
func ProveDatabase(ctx context.Context, kube kubernetes.Interface, newClient func() (DatabaseProofClient, error), p *DatabasePlan, mount, role string) (err error) {
	fail := func(step, what, cause string) error {
		return &ProofError{Workload: p.Workload, Step: step, What: what, Cause: cause}
	}
	sa := p.Namespace + "/" + p.ServiceAccount
	var audiences []string
	if a, _ := p.RoleData["audience"].(string); a != "" {
		audiences = []string{a}
	}
	exp := proofTokenSecs
	tr, kerr := kube.CoreV1().ServiceAccounts(p.Namespace).CreateToken(ctx, p.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if kerr != nil {
		return fail(StepToken, "requesting a token for ServiceAccount "+sa, kerr.Error())
	}
	jwt := tr.Status.Token
	c, cerr := newClient()
	if cerr != nil {
		return fail(StepLogin, "connecting to Vault", cerr.Error())
	}
	tok, lerr := c.Login(ctx, p.authMount, map[string]any{"role": p.Role, "jwt": jwt})
	if lerr != nil {
		return fail(StepLogin, fmt.Sprintf("login as %s with role %s at auth/%s", sa, p.Role, p.authMount), redact(vaultWords(lerr), jwt))
	}
	c.SetToken(tok)
	defer func() {
		// Revoking the token revokes the proof's credentials (their lease is its child).
		if rerr := c.RevokeSelf(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = fail(StepLogin, "revoking the proof's token", redact(vaultWords(rerr), tok))
		}
	}()
	cr, gerr := c.GenerateDBCredentials(ctx, mount, role)
	switch {
	case gerr != nil && vault.IsForbidden(gerr):
		return fail(StepRead, "reading "+p.CredsPath+" as "+sa, "permission denied: policy "+p.Policy+" does not grant read on it")
	case gerr != nil:
		return fail(StepRead, "reading "+p.CredsPath+" as "+sa, redact(vaultWords(gerr), tok))
	}
	if u, _ := cr.Data[DBUsername].(string); u == "" {
		return fail(StepRead, "reading "+p.CredsPath+" as "+sa, "Vault returned no username")
	}
	if pw, _ := cr.Data[DBPassword].(string); pw == "" {
		return fail(StepRead, "reading "+p.CredsPath+" as "+sa, "Vault returned no password")
	}
	sibling := strings.Trim(mount, "/") + "/creds/" + proofSibling
	caps, cerr2 := c.CapabilitiesSelf(ctx, sibling)
	if cerr2 != nil {
		return fail(StepSibling, "asking Vault what the token may do on "+sibling, redact(vaultWords(cerr2), tok))
	}
	if got := caps[sibling]; !slices.Equal(got, []string{"deny"}) {
		return fail(StepSibling, "checking that "+sibling+" is denied", fmt.Sprintf("the token has %s there: its policies grant more than %s", strings.Join(got, ", "), p.CredsPath))
	}
	return nil
}

// Database switch states, in the journal under database.KIND.NAME.
const (
	DBPlanned    = "planned"
	DBBackedUp   = "backed-up"
	DBAccess     = "access"
	DBProved     = "proved"
	DBPatched    = "patched"
	DBVerified   = "verified"
	DBFailed     = "failed"
	DBRolledBack = "rolled-back"
)

// DatabaseRecord is the journal's record of a workload's switch: names and hashes only.
type DatabaseRecord struct {
	State        string    `json:"state"`
	Reason       string    `json:"reason,omitempty"`
	CredsPath    string    `json:"credsPath"`
	Role         string    `json:"role"`
	Policy       string    `json:"policy"`
	OriginalHash string    `json:"originalHash,omitempty"`
	PatchedHash  string    `json:"patchedHash,omitempty"`
	At           time.Time `json:"at"`
}

func databaseKey(id WorkloadID) string { return "database." + id.Kind + "." + id.Name }

// PutDatabase records a workload's database switch, stamped now.
func (s JournalStore) PutDatabase(ctx context.Context, id WorkloadID, r DatabaseRecord) error {
	r.At = s.now()
	return s.put(ctx, databaseKey(id), r)
}

// Database returns the record of a workload's database switch, nil when there is none.
func (s JournalStore) Database(ctx context.Context, id WorkloadID) (*DatabaseRecord, error) {
	data, err := s.cm().Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration journal (ConfigMap %s/%s): %w", s.Namespace, JournalConfigMap, err)
	}
	v, ok := data[databaseKey(id)]
	if !ok {
		return nil, nil
	}
	var r DatabaseRecord
	if err := json.Unmarshal([]byte(v), &r); err != nil {
		return nil, fmt.Errorf("journal key %s is unreadable: %w", databaseKey(id), err)
	}
	return &r, nil
}

// Databases returns every database switch the journal records, by KIND/NAME: what a
// dynamic-db-credentials gate observes (State DBVerified is a switched, running workload).
func (s JournalStore) Databases(ctx context.Context) (map[string]DatabaseRecord, error) {
	data, err := s.cm().Get(ctx)
	if err != nil {
		return nil, fmt.Errorf("reading the migration journal (ConfigMap %s/%s): %w", s.Namespace, JournalConfigMap, err)
	}
	out := map[string]DatabaseRecord{}
	for k, v := range data {
		rest, ok := strings.CutPrefix(k, "database.")
		kind, name, ok2 := strings.Cut(rest, ".")
		if !ok || !ok2 {
			continue
		}
		var r DatabaseRecord
		if err := json.Unmarshal([]byte(v), &r); err != nil {
			return nil, fmt.Errorf("journal key %s is unreadable: %w", k, err)
		}
		out[WorkloadID{Kind: kind, Name: name}.String()] = r
	}
	return out, nil
}

// databaseBackupPath keeps the template before migrate database apart from the namespace
// migration's backup, which holds the template before the injector.
func databaseBackupPath(ns string, id WorkloadID) string {
	return BackupPrefix(ns) + "database/" + strings.ToLower(id.Kind) + "/" + id.Name
}

// DatabaseSwitch carries out a DatabasePlan.
type DatabaseSwitch struct {
	Kube            kubernetes.Interface
	Vault           DatabaseVault
	BackupMount     string
	Journal         JournalStore
	Prove           func(ctx context.Context) error
	RolloutTimeout  time.Duration
	RolloutInterval time.Duration
	Progress        func(format string, args ...any)
}

// DatabaseOutcome is what a switch or a rollback did.
type DatabaseOutcome struct {
	Workload string `json:"workload"`
	State    string `json:"state"`
	Changed  bool   `json:"changed"`
	Message  string `json:"message,omitempty"`
}

func (d *DatabaseSwitch) progress(format string, args ...any) {
	if d.Progress != nil {
		d.Progress(format, args...)
	}
}

// Apply backs up the template (once: the first backup holds what to roll back to), writes the
// policy and role, proves them, patches the workload and follows its rollout; a rollout that
// does not finish is rolled back by itself. Each step is journaled first.
func (d *DatabaseSwitch) Apply(ctx context.Context, id WorkloadID, p *DatabasePlan) (DatabaseOutcome, error) {
	out := DatabaseOutcome{Workload: id.String()}
	ns := p.Namespace
	rec := DatabaseRecord{CredsPath: p.CredsPath, Role: p.Role, Policy: p.Policy}
	if prev, err := d.Journal.Database(ctx, id); err != nil {
		return out, err
	} else if prev != nil {
		rec.OriginalHash, rec.PatchedHash = prev.OriginalHash, prev.PatchedHash
	}
	record := func(state, reason string) error {
		rec.State, rec.Reason = state, reason
		return d.Journal.PutDatabase(ctx, id, rec)
	}
	failed := func(step string, err error) (DatabaseOutcome, error) {
		msg := fmt.Sprintf("%s: %v", step, err)
		if jerr := record(DBFailed, msg); jerr != nil {
			msg += "; and recording that failed: " + jerr.Error()
		}
		out.State, out.Message = DBFailed, msg
		return out, nil
	}
	live, err := ReadTemplate(ctx, d.Kube, ns, id)
	if err != nil {
		return failed("reading the workload", err)
	}
	already := TemplateHash(*live) == TemplateHash(p.Target) || (rec.PatchedHash != "" && TemplateHash(*live) == rec.PatchedHash)
	if !already {
		if _, _, err := putBackup(ctx, d.Vault, d.BackupMount, databaseBackupPath(ns, id), false, WorkloadBackup{Kind: id.Kind, Name: id.Name, Template: *live}, nil, false); err != nil {
			return failed("backing up the workload", err)
		}
		if rec.OriginalHash == "" {
			rec.OriginalHash = TemplateHash(*live)
		}
		if err := record(DBBackedUp, ""); err != nil {
			return failed("journal", err)
		}
	}
	if _, err := ensureWorkloadPolicy(ctx, d.Vault, p.Policy, p.PolicyHCL); err != nil {
		return failed("access", err)
	}
	if _, err := ensureWorkloadRole(ctx, d.Vault, AuthRole{Mount: p.authMount, Name: p.Role, Data: p.RoleData}); err != nil {
		return failed("access", err)
	}
	if err := record(DBAccess, ""); err != nil {
		return failed("journal", err)
	}
	if d.Prove != nil {
		if err := d.Prove(ctx); err != nil {
			return failed("proof", err)
		}
	}
	if err := record(DBProved, ""); err != nil {
		return failed("journal", err)
	}
	changed, stored, err := SetTemplate(ctx, d.Kube, ns, id, p.Target, func(tpl corev1.PodTemplateSpec) error {
		rec.PatchedHash = TemplateHash(tpl)
		return record(DBProved, "")
	})
	if err != nil {
		return failed("patching the workload", err)
	}
	out.Changed = changed
	rec.PatchedHash = TemplateHash(stored)
	if err := record(DBPatched, ""); err != nil {
		return failed("journal", err)
	}
	if changed {
		d.progress("%s: patched; waiting for its rollout", id)
	}
	st, err := WaitRollout(ctx, d.Kube, ns, id, cmpDuration(d.RolloutTimeout, 5*time.Minute), cmpDuration(d.RolloutInterval, time.Second))
	if err != nil {
		return failed("following the rollout", err)
	}
	if !st.Done {
		why := "its rollout did not finish: " + st.Message
		if _, rerr := d.restore(ctx, id, ns); rerr != nil {
			return failed("rolling back after a failed rollout", fmt.Errorf("%s; and the rollback failed: %w", why, rerr))
		}
		return failed("rollout", fmt.Errorf("rolled back by itself: %s", why))
	}
	if err := record(DBVerified, ""); err != nil {
		return failed("journal", err)
	}
	out.State, out.Message = DBVerified, st.Message
	return out, nil
}

// Rollback puts the template from before migrate database back and follows its rollout; the
// backup is then dropped, so a later switch backs up the workload as it is then. The policy
// and role stay (nothing logs in with them any more); their credentials expire with their
// leases.
func (d *DatabaseSwitch) Rollback(ctx context.Context, ns string, id WorkloadID) (DatabaseOutcome, error) {
	out := DatabaseOutcome{Workload: id.String()}
	changed, err := d.restore(ctx, id, ns)
	if err != nil {
		return out, err
	}
	out.Changed = changed
	st, err := WaitRollout(ctx, d.Kube, ns, id, cmpDuration(d.RolloutTimeout, 5*time.Minute), cmpDuration(d.RolloutInterval, time.Second))
	if err != nil {
		return out, err
	}
	if !st.Done {
		return out, fmt.Errorf("%s was restored, but its rollout did not finish: %s", id, st.Message)
	}
	if err := d.Vault.KVDeleteAll(ctx, d.BackupMount, databaseBackupPath(ns, id)); err != nil {
		return out, fmt.Errorf("%s is restored; deleting its backup failed: %w", id, err)
	}
	rec := DatabaseRecord{State: DBRolledBack}
	if prev, err := d.Journal.Database(ctx, id); err == nil && prev != nil {
		rec = *prev
		rec.State, rec.Reason, rec.PatchedHash = DBRolledBack, "", ""
	}
	if err := d.Journal.PutDatabase(ctx, id, rec); err != nil {
		return out, err
	}
	out.State, out.Message = DBRolledBack, st.Message
	return out, nil
}

func (d *DatabaseSwitch) restore(ctx context.Context, id WorkloadID, ns string) (bool, error) {
	var b WorkloadBackup
	ok, err := getBackup(ctx, d.Vault, d.BackupMount, databaseBackupPath(ns, id), &b)
	if err != nil {
		return false, err
	}
	if !ok {
		return false, fmt.Errorf("no backup of %s in %s/%s: migrate database did not switch it (or a rollback already restored it)", id, d.BackupMount, databaseBackupPath(ns, id))
	}
	changed, _, err := SetTemplate(ctx, d.Kube, ns, id, b.Template)
	if err == nil && id.Kind == "StatefulSet" {
		err = deleteUnreadyPods(ctx, d.Kube, ns, id)
	}
	return changed, err
}

func cmpDuration(d, def time.Duration) time.Duration {
	if d > 0 {
		return d
	}
	return def
}

// anyStrings reads a list Vault returned as JSON.
func anyStrings(v any) []string {
	var out []string
	switch l := v.(type) {
	case []string:
		return l
	case []any:
		for _, x := range l {
			if s, ok := x.(string); ok {
				out = append(out, s)
			}
		}
	}
	return out
}
