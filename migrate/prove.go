package migrate

import (
	"context"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strings"

	vaultapi "github.com/hashicorp/vault/api"
	authenticationv1 "k8s.io/api/authentication/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Proof steps, in the order Prove takes them.
const (
	StepRole       = "role"     // read the role the workload logs in with
	StepToken      = "token"    // TokenRequest for its ServiceAccount
	StepLogin      = "login"    // log in at the auth mount with its role
	StepRead       = "read"     // read a KV path with the workload's token
	StepCompare    = "compare"  // compare the values with the Secret's
	StepSibling    = "sibling"  // a sibling path under the same parent must be denied
	StepSecret     = "secret"   // read the Secret the path was copied from
	StepPlan       = "plan"     // the plan does not say where a path comes from
	proofTokenSecs = int64(600) // the shortest TokenRequest the API server issues
	proofSibling   = "vaultctl-proof-sibling"
)

// ProofError is a failed proof: which workload, at which step, and why in words. It never
// holds a value, a JWT or a Vault token.
type ProofError struct {
	Workload string // Kind/name
	Step     string // one of the Step constants
	What     string // the step in words: "login as team-a/api with role r at auth/kubernetes"
	Cause    string // e.g. "service account name not authorized"
}

func (e *ProofError) Error() string {
	return fmt.Sprintf("proving %s: %s: %s", e.Workload, e.What, e.Cause)
}

// IsProofError reports whether err is a *ProofError.
func IsProofError(err error) bool {
	var p *ProofError
	return errors.As(err, &p)
}

// ProofClient is what the proof does as the workload: log in, read, ask Vault what its token
// may do, and give the token back. A vault.Client from a Dialer satisfies it.
type ProofClient interface {
	Login(ctx context.Context, mount string, body map[string]any) (string, error)
	KVRead(ctx context.Context, mount, path string) (*vault.KVSecret, error)
	SetToken(token string)
	CapabilitiesSelf(ctx context.Context, paths ...string) (map[string][]string, error)
	RevokeSelf(ctx context.Context) error
}

// ProofAdmin is what the proof reads with vaultctl's own token: the role (for its audience)
// and each entry's metadata (which keys are stored base64), neither of which the workload's
// policy grants.
type ProofAdmin interface {
	ReadRole(ctx context.Context, mount, name string) (map[string]any, error)
	KVReadMetadata(ctx context.Context, mount, path string) (*vault.KVMetadata, error)
}

// ProofInput is what Prove needs besides the workload.
type ProofInput struct {
	Kube      kubernetes.Interface // TokenRequest, and the Secrets the values are compared with
	Admin     ProofAdmin
	NewClient func() (ProofClient, error) // a client without a token, used once per proof
	Namespace string
	AuthMount string
	KVMounts  []string
	Plan      *Plan // where each of the workload's KV paths was copied from
}

// Prove shows, before the workload is touched, that it will read what it reads today: a
// TokenRequest token for its ServiceAccount logs in with its role; every KV path it will read
// is read with that token and compared byte for byte with the Secret's data; and Vault itself
// says a sibling path under each parent is denied. The token is revoked at the end. A failure
// is a *ProofError naming the workload, the step and the cause.
func Prove(ctx context.Context, in ProofInput, wp WorkloadPlan) (err error) {
	id := WorkloadID{Kind: wp.Kind, Name: wp.Name}.String()
	sa := in.Namespace + "/" + wp.ServiceAccount
	fail := func(step, what, cause string) error {
		return &ProofError{Workload: id, Step: step, What: what, Cause: cause}
	}

	if in.Plan == nil || in.Kube == nil || in.Admin == nil || in.NewClient == nil {
		return fail(StepPlan, "starting the proof", "the proof was given no plan, Kubernetes client or Vault client")
	}
	// Every path is matched to its Secret first: the proof is about these, and a plan that
	// cannot say where a path came from cannot be proved.
	sources := map[string]SecretPlan{}
	for _, path := range wp.KVPaths {
		i := slices.IndexFunc(in.Plan.Secrets, func(s SecretPlan) bool { return s.KVPath == path && s.Action == SecretMigrate })
		if i < 0 {
			return fail(StepPlan, "finding the Secret copied to "+path, "the plan migrates no Secret to that path; re-run the plan")
		}
		if config.KVMountOf(in.KVMounts, path) == "" {
			return fail(StepPlan, "reading "+path, "the path is on no kv mount of the config")
		}
		sources[path] = in.Plan.Secrets[i]
	}

	roleWhat := fmt.Sprintf("reading role %s at auth/%s", wp.Role, in.AuthMount)
	role, rerr := in.Admin.ReadRole(ctx, in.AuthMount, wp.Role)
	switch {
	case rerr != nil && !vault.IsNotFound(rerr):
		return fail(StepRole, roleWhat, vaultWords(rerr))
	case role == nil:
		return fail(StepRole, roleWhat, "the role does not exist; access must be created before the proof")
	}

	var audiences []string
	if a, _ := role["audience"].(string); a != "" {
		audiences = []string{a} // the role rejects a token for any other audience
	}
	exp := proofTokenSecs
	tr, kerr := in.Kube.CoreV1().ServiceAccounts(in.Namespace).CreateToken(ctx, wp.ServiceAccount,
		&authenticationv1.TokenRequest{Spec: authenticationv1.TokenRequestSpec{Audiences: audiences, ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if kerr != nil {
		return fail(StepToken, "requesting a token for ServiceAccount "+sa, kerr.Error())
	}
	jwt := tr.Status.Token
	if jwt == "" {
		return fail(StepToken, "requesting a token for ServiceAccount "+sa, "the API server returned no token")
	}

	c, cerr := in.NewClient()
	if cerr != nil {
		return fail(StepLogin, "connecting to Vault", cerr.Error())
	}
	tok, lerr := c.Login(ctx, in.AuthMount, map[string]any{"role": wp.Role, "jwt": jwt})
	if lerr != nil {
		what := fmt.Sprintf("login as %s with role %s at auth/%s", sa, wp.Role, in.AuthMount)
		if vault.StatusCode(lerr) != 0 {
			what += " refused" // Vault answered: the role, its binding or the auth config said no
		}
		return fail(StepLogin, what, redact(vaultWords(lerr), jwt))
	}
	c.SetToken(tok)
	// The login lease would otherwise live for the role's ttl; a proof needs it no longer.
	defer func() {
		if rerr := c.RevokeSelf(context.WithoutCancel(ctx)); rerr != nil && err == nil {
			err = fail(StepLogin, "revoking the proof's token", redact(vaultWords(rerr), tok))
		}
	}()
	words := func(e error) string { return redact(redact(vaultWords(e), tok), jwt) }

	for _, path := range slices.Sorted(maps.Keys(sources)) {
		src := sources[path]
		mount := config.KVMountOf(in.KVMounts, path)
		rest := strings.TrimPrefix(strings.TrimPrefix(path, mount), "/")
		readWhat := fmt.Sprintf("reading %s as %s", path, sa)
		got, kerr := c.KVRead(ctx, mount, rest)
		switch {
		case kerr != nil && vault.IsForbidden(kerr):
			return fail(StepRead, readWhat, "permission denied: policy "+wp.Policy+" does not grant read on "+mount+"/data/"+rest)
		case kerr != nil:
			return fail(StepRead, readWhat, words(kerr))
		case got == nil:
			return fail(StepRead, readWhat, "the entry is not there; copy the Secret first")
		}
		meta, merr := in.Admin.KVReadMetadata(ctx, mount, rest)
		if merr != nil {
			return fail(StepCompare, "reading the metadata of "+path, words(merr))
		}
		var custom map[string]string
		if meta != nil {
			custom = meta.CustomMetadata
		}
		secret, serr := in.Kube.CoreV1().Secrets(in.Namespace).Get(ctx, src.Name, metav1.GetOptions{})
		if serr != nil {
			return fail(StepSecret, "reading Secret "+in.Namespace+"/"+src.Name, serr.Error())
		}
		if diff := differingKeys(got.Data, Base64KeysOf(custom), secret.Data); len(diff) > 0 {
			return fail(StepCompare, fmt.Sprintf("comparing %s (version %d) with Secret %s/%s", path, got.Version, in.Namespace, src.Name),
				"keys "+strings.Join(diff, ", ")+" differ; copy the Secret again")
		}
	}

	siblings := siblingPaths(wp.KVPaths, in.KVMounts)
	if len(siblings) == 0 {
		return nil
	}
	caps, kerr := c.CapabilitiesSelf(ctx, siblings...)
	if kerr != nil {
		return fail(StepSibling, "asking Vault what the token may do on "+strings.Join(siblings, ", "), words(kerr))
	}
	for _, p := range siblings {
		if got := caps[p]; !slices.Equal(got, []string{"deny"}) {
			return fail(StepSibling, "checking that "+p+" is denied", fmt.Sprintf("the token has %s there: the policy grants more than the workload's paths", strings.Join(got, ", ")))
		}
	}
	return nil
}

// siblingPaths are, for each parent folder of paths, the API data path of a name beside
// them that none of them is: what the parent deny must refuse.
func siblingPaths(paths, kvMounts []string) []string {
	var out []string
	for _, path := range paths {
		mount := config.KVMountOf(kvMounts, path)
		if mount == "" {
			continue
		}
		rest := strings.TrimPrefix(strings.TrimPrefix(path, mount), "/")
		parent := ""
		if i := strings.LastIndex(rest, "/"); i >= 0 {
			parent = rest[:i+1]
		}
		name := proofSibling
		for slices.Contains(paths, mount+"/"+parent+name) {
			name += "-x"
		}
		p := mount + "/data/" + parent + name
		if !slices.Contains(out, p) {
			out = append(out, p)
		}
	}
	slices.Sort(out)
	return out
}

// vaultWords is Vault's own explanation ("service account name not authorized") rather than
// the client's wrapping, which repeats the URL and status.
func vaultWords(err error) string {
	var re *vaultapi.ResponseError
	if errors.As(err, &re) && len(re.Errors) > 0 {
		return strings.Join(re.Errors, "; ")
	}
	return err.Error()
}

// redact removes secret from s: Vault and the API server do not echo tokens, but a proof
// error must not depend on that.
func redact(s, secret string) string {
	if secret == "" {
		return s
	}
	return strings.ReplaceAll(s, secret, "[redacted]")
}
