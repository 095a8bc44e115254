package phases

import (
	"context"
	"fmt"
	"os"
	"slices"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/internal/vault"
)

// Reviewer identity used by Vault to call TokenReview in reviewer-jwt mode.
const (
	ReviewerServiceAccount = "vault-auth"
	reviewerTokenSecret    = "vault-auth-token"
	reviewerBindingPrefix  = "vaultctl-vault-auth-delegator-"
)

// KubernetesAuth enables the Kubernetes auth method at its configured mount path (one per
// cluster when clusters share a Vault) and keeps its config matching the cluster: API host,
// cluster CA (a rotated CA is detected and repaired) and the token reviewer.
//
// Token reviewer modes (kubernetesAuth.tokenReviewer):
//   - reviewer-jwt (default): a vault-auth ServiceAccount bound to system:auth-delegator, whose
//     long-lived token Vault uses for every TokenReview. Works for any JWT audience; the cost is
//     one long-lived credential stored in Vault.
//   - client-jwt: Vault reviews each login with the client's own JWT. No long-lived credential,
//     but every client ServiceAccount needs system:auth-delegator (vaultctl binds the ones named
//     in roles), and the API server must accept the JWT's audience, so roles with a custom
//     audience fail.
type KubernetesAuth struct {
	In       KubernetesAuthInputs
	Kube     kubernetes.Interface
	KubeHost string // API server address from the kubeconfig, when kubernetesAuth.host is empty
	KubeCA   []byte // cluster CA from the kubeconfig, when kubernetesAuth.caCert is empty
	Vault    VaultAdmin
	// ReviewerTokenTimeout bounds the wait for the token controller to fill the reviewer Secret.
	ReviewerTokenTimeout time.Duration
}

// KubernetesAuthInputs is what the kubernetes-auth phase reads of the config. Only the roles'
// bindings matter here (client-jwt binds their ServiceAccounts to system:auth-delegator).
type KubernetesAuthInputs struct {
	Auth      config.KubernetesAuth
	Namespace string
	Reviewers []rbacv1.Subject
}

func kubernetesAuthInputs(cfg *config.Config) KubernetesAuthInputs {
	return KubernetesAuthInputs{Auth: cfg.KubernetesAuth, Namespace: cfg.Vault.Namespace, Reviewers: reviewSubjects(cfg)}
}

func (p *KubernetesAuth) Name() string { return "kubernetes-auth" }
func (p *KubernetesAuth) Description() string {
	return "Kubernetes auth method, token reviewer, cluster host and CA"
}
func (p *KubernetesAuth) Inputs() any { return p.In }

func (p *KubernetesAuth) Check(ctx context.Context) (Diff, error) {
	return checkObserved(ctx, p.observe)
}

func (p *KubernetesAuth) Apply(ctx context.Context, _ Diff) error {
	return applyObserved(ctx, p.observe)
}

func (p *KubernetesAuth) observe(ctx context.Context) ([]step, []string, error) {
	steps, err := p.kubeObjects(ctx)
	if err != nil {
		return nil, nil, err
	}
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return nil, nil, err
	}
	path := p.In.Auth.Path
	auths, err := v.ListAuthMethods(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing auth methods", err)
	}
	var tune vault.AuthTune
	if m, ok := auths[path+"/"]; !ok {
		steps = append(steps, step{change: Change{Create, "auth method kubernetes at " + path + "/", ""}, apply: func(ctx context.Context) error {
			return v.EnableAuthMethod(ctx, path, vault.MountInfo{Type: "kubernetes", Description: "Kubernetes auth managed by vaultctl"})
		}})
	} else if m.Type != "kubernetes" {
		return nil, nil, Fail("choose another kubernetesAuth.path", "auth path %s/ is taken by a %s auth method", path, m.Type)
	} else if tune, err = v.ReadAuthTune(ctx, path); err != nil {
		return nil, nil, vaultErr("reading sys/auth/"+path+"/tune", err)
	}
	if s := auditRoleStep(v, path, tune); s != nil {
		steps = append(steps, *s)
	}
	s, err := p.authConfig(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	if s != nil {
		steps = append(steps, *s)
	}
	return steps, []string{fmt.Sprintf("auth/%s, %s", path, p.In.Auth.TokenReviewer)}, nil
}

// auditClearKeys are the login request keys audit devices must log in clear: without "role",
// Vault HMACs it and a failed login (which carries no identity) cannot be attributed, so
// `vaultctl audit analyze` could not say which role pods fail at. The JWT stays HMAC'd.
var auditClearKeys = []string{"role"}

// auditRoleStep returns the tune that adds auditClearKeys to the mount's
// audit_non_hmac_request_keys, keeping the keys someone else listed.
func auditRoleStep(v vault.AuthMethods, path string, cur vault.AuthTune) *step {
	want := slices.Clone(cur.AuditNonHMACRequestKeys)
	var missing []string
	for _, k := range auditClearKeys {
		if !slices.Contains(want, k) {
			want = append(want, k)
			missing = append(missing, k)
		}
	}
	if len(missing) == 0 {
		return nil
	}
	return &step{change: Change{Update, "sys/auth/" + path + "/tune", "audit_non_hmac_request_keys += " + strings.Join(missing, ",") + " (failed logins name their role in the audit log)"}, apply: func(ctx context.Context) error {
		return v.TuneAuthMethod(ctx, path, vault.AuthTune{AuditNonHMACRequestKeys: want})
	}}
}

// ensureServiceAccount returns a step creating ns/name when it is missing.
func ensureServiceAccount(ctx context.Context, k kubernetes.Interface, ns, name string) (*step, error) {
	_, err := k.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return &step{change: Change{Create, "ServiceAccount " + ns + "/" + name, ""}, apply: func(ctx context.Context) error {
		_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ManagedByLabel: "vaultctl"}}}, metav1.CreateOptions{})
		return ignoreExists(err)
	}}, nil
}

// reviewSubjects are the ServiceAccounts that must be allowed to create TokenReviews.
func reviewSubjects(cfg *config.Config) []rbacv1.Subject {
	ns := cfg.Vault.Namespace
	if cfg.KubernetesAuth.TokenReviewer == "reviewer-jwt" {
		return []rbacv1.Subject{{Kind: "ServiceAccount", Name: ReviewerServiceAccount, Namespace: ns}}
	}
	subjects := []rbacv1.Subject{{Kind: "ServiceAccount", Name: AdminServiceAccount, Namespace: ns}}
	for _, r := range cfg.Roles {
		for _, rns := range r.Namespaces {
			for _, sa := range r.ServiceAccounts {
				if !strings.Contains(rns+sa, "*") {
					subjects = append(subjects, rbacv1.Subject{Kind: "ServiceAccount", Name: sa, Namespace: rns})
				}
			}
		}
	}
	slices.SortFunc(subjects, func(a, b rbacv1.Subject) int { return strings.Compare(a.Namespace+"/"+a.Name, b.Namespace+"/"+b.Name) })
	return slices.Compact(subjects)
}

func (p *KubernetesAuth) kubeObjects(ctx context.Context) ([]step, error) {
	ns := p.In.Namespace
	k := p.Kube
	labels := map[string]string{ManagedByLabel: "vaultctl"}
	var steps []step
	if s, err := namespaceStep(ctx, k, ns); err != nil {
		return nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	if p.In.Auth.TokenReviewer == config.ReviewerJWT {
		if s, err := ensureServiceAccount(ctx, k, ns, ReviewerServiceAccount); err != nil {
			return nil, err
		} else if s != nil {
			steps = append(steps, *s)
		}
	}
	subjects := p.In.Reviewers
	// One binding per Vault namespace: the binding is cluster-wide, and two installations in one
	// cluster sharing a name would each replace the other's reviewers (its logins then fail).
	reviewerBinding := reviewerBindingPrefix + ns
	crb, err := k.RbacV1().ClusterRoleBindings().Get(ctx, reviewerBinding, metav1.GetOptions{})
	want := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reviewerBinding, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   subjects,
	}
	switch {
	case apierrors.IsNotFound(err):
		steps = append(steps, step{change: Change{Create, "ClusterRoleBinding " + reviewerBinding, fmt.Sprintf("%d ServiceAccount(s) may review tokens", len(subjects))}, apply: func(ctx context.Context) error {
			_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, want, metav1.CreateOptions{})
			return ignoreExists(err)
		}})
	case err != nil:
		return nil, err
	case !slices.Equal(crb.Subjects, want.Subjects):
		steps = append(steps, step{change: Change{Update, "ClusterRoleBinding " + reviewerBinding, "token reviewers changed"}, apply: func(ctx context.Context) error {
			crb.Subjects = want.Subjects
			_, err := k.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{})
			return err
		}})
	}
	if p.In.Auth.TokenReviewer == config.ReviewerJWT {
		if _, err := k.CoreV1().Secrets(ns).Get(ctx, reviewerTokenSecret, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			steps = append(steps, step{change: Change{Create, "Secret " + ns + "/" + reviewerTokenSecret, "long-lived reviewer JWT"}, apply: func(ctx context.Context) error {
				_, err := k.CoreV1().Secrets(ns).Create(ctx, &corev1.Secret{
					ObjectMeta: metav1.ObjectMeta{Name: reviewerTokenSecret, Namespace: ns, Labels: labels,
						Annotations: map[string]string{corev1.ServiceAccountNameKey: ReviewerServiceAccount}},
					Type: corev1.SecretTypeServiceAccountToken,
				}, metav1.CreateOptions{})
				return ignoreExists(err)
			}})
		} else if err != nil {
			return nil, err
		}
	}
	return steps, nil
}

// authConfig compares auth/<path>/config with the cluster; a rotated cluster CA shows up here.
func (p *KubernetesAuth) authConfig(ctx context.Context, v vault.AuthRoles) (*step, error) {
	host := p.In.Auth.Host
	if host == "" {
		host = p.KubeHost
	}
	ca := string(p.KubeCA)
	if f := p.In.Auth.CACert; f != "" {
		b, err := os.ReadFile(f)
		if err != nil {
			return nil, Fail("kubernetesAuth.caCert must be a readable PEM file", "reading %s: %v", f, err)
		}
		ca = string(b)
	}
	mount := p.In.Auth.Path
	path := "auth/" + mount + "/config"
	reviewer := p.In.Auth.TokenReviewer == config.ReviewerJWT
	var why []string
	cur, err := v.ReadAuthConfig(ctx, mount)
	if err != nil && !isNotFound(err) {
		return nil, vaultErr("reading "+path, err)
	}
	if cur == nil {
		why = append(why, "not configured")
	} else {
		if cur["kubernetes_host"] != host {
			why = append(why, fmt.Sprintf("host %v, want %s", cur["kubernetes_host"], host))
		}
		if strings.TrimSpace(fmt.Sprint(cur["kubernetes_ca_cert"])) != strings.TrimSpace(ca) {
			why = append(why, "cluster CA differs (rotated?)")
		}
		if set, _ := cur["token_reviewer_jwt_set"].(bool); set != reviewer {
			why = append(why, fmt.Sprintf("token reviewer JWT set=%v, want %v", set, reviewer))
		}
	}
	if len(why) == 0 {
		return nil, nil
	}
	return &step{change: Change{Update, path, strings.Join(why, "; ")}, apply: func(ctx context.Context) error {
		data := map[string]any{"kubernetes_host": host, "kubernetes_ca_cert": ca, "disable_local_ca_jwt": true}
		if reviewer {
			jwt, err := p.reviewerJWT(ctx)
			if err != nil {
				return err
			}
			data["token_reviewer_jwt"] = jwt
		} else {
			data["token_reviewer_jwt"] = ""
		}
		return v.WriteAuthConfig(ctx, mount, data)
	}}, nil
}

// reviewerJWT waits for the token controller to fill the reviewer Secret.
func (p *KubernetesAuth) reviewerJWT(ctx context.Context) (string, error) {
	ns := p.In.Namespace
	timeout := p.ReviewerTokenTimeout
	if timeout == 0 {
		timeout = time.Minute
	}
	deadline := time.Now().Add(timeout)
	for {
		s, err := p.Kube.CoreV1().Secrets(ns).Get(ctx, reviewerTokenSecret, metav1.GetOptions{})
		if err == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
			return string(s.Data[corev1.ServiceAccountTokenKey]), nil
		}
		if time.Now().After(deadline) {
			return "", Fail("check that kube-controller-manager runs its token controller", "Secret %s/%s got no token within %s", ns, reviewerTokenSecret, timeout)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
