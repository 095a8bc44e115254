package phases

import (
	"context"
	"fmt"
	"slices"
	"strings"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	corev1 "k8s.io/api/core/v1"
	rbacv1 "k8s.io/api/rbac/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// Reviewer identity used by Vault to call TokenReview in reviewer-jwt mode.
const (
	ReviewerServiceAccount = "vault-auth"
	reviewerTokenSecret    = "vault-auth-token"
	reviewerBinding        = "vaultctl-vault-auth-delegator"
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
type KubernetesAuth struct{ Env *Env }

func (p *KubernetesAuth) Name() string { return "kubernetes-auth" }
func (p *KubernetesAuth) Description() string {
	return "Kubernetes auth method, token reviewer, cluster host and CA"
}
func (p *KubernetesAuth) Inputs() any {
	return struct{ A, NS, Roles any }{p.Env.Config.KubernetesAuth, p.Env.Config.Vault.Namespace, p.Env.Config.Roles}
}

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
	v, err := p.Env.adminVault(ctx)
	if err != nil {
		return nil, nil, err
	}
	path := p.Env.Config.KubernetesAuth.Path
	auths, err := v.Sys().ListAuthWithContext(ctx)
	if err != nil {
		return nil, nil, vaultErr("listing auth methods", err)
	}
	if m, ok := auths[path+"/"]; !ok {
		steps = append(steps, step{Change{Create, "auth method kubernetes at " + path + "/", ""}, func(ctx context.Context) error {
			return v.Sys().EnableAuthWithOptionsWithContext(ctx, path, &vaultapi.EnableAuthOptions{Type: "kubernetes", Description: "Kubernetes auth managed by vaultctl"})
		}})
	} else if m.Type != "kubernetes" {
		return nil, nil, Fail("choose another kubernetesAuth.path", "auth path %s/ is taken by a %s auth method", path, m.Type)
	}
	s, err := p.authConfig(ctx, v)
	if err != nil {
		return nil, nil, err
	}
	if s != nil {
		steps = append(steps, *s)
	}
	return steps, []string{fmt.Sprintf("auth/%s, %s", path, p.Env.Config.KubernetesAuth.TokenReviewer)}, nil
}

// ensureServiceAccount returns a step creating ns/name when it is missing.
func ensureServiceAccount(ctx context.Context, env *Env, ns, name string) (*step, error) {
	k := env.Kube
	_, err := k.CoreV1().ServiceAccounts(ns).Get(ctx, name, metav1.GetOptions{})
	if err == nil {
		return nil, nil
	}
	if !apierrors.IsNotFound(err) {
		return nil, err
	}
	return &step{Change{Create, "ServiceAccount " + ns + "/" + name, ""}, func(ctx context.Context) error {
		_, err := k.CoreV1().ServiceAccounts(ns).Create(ctx, &corev1.ServiceAccount{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: map[string]string{ManagedByLabel: "vaultctl"}}}, metav1.CreateOptions{})
		return ignoreExists(err)
	}}, nil
}

// reviewSubjects are the ServiceAccounts that must be allowed to create TokenReviews.
func (p *KubernetesAuth) reviewSubjects() []rbacv1.Subject {
	cfg := p.Env.Config
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
	cfg := p.Env.Config
	ns := cfg.Vault.Namespace
	k := p.Env.Kube
	labels := map[string]string{ManagedByLabel: "vaultctl"}
	var steps []step
	if s, err := p.Env.namespaceStep(ctx); err != nil {
		return nil, err
	} else if s != nil {
		steps = append(steps, *s)
	}
	if cfg.KubernetesAuth.TokenReviewer == "reviewer-jwt" {
		if s, err := ensureServiceAccount(ctx, p.Env, ns, ReviewerServiceAccount); err != nil {
			return nil, err
		} else if s != nil {
			steps = append(steps, *s)
		}
	}
	subjects := p.reviewSubjects()
	crb, err := k.RbacV1().ClusterRoleBindings().Get(ctx, reviewerBinding, metav1.GetOptions{})
	want := &rbacv1.ClusterRoleBinding{
		ObjectMeta: metav1.ObjectMeta{Name: reviewerBinding, Labels: labels},
		RoleRef:    rbacv1.RoleRef{APIGroup: "rbac.authorization.k8s.io", Kind: "ClusterRole", Name: "system:auth-delegator"},
		Subjects:   subjects,
	}
	switch {
	case apierrors.IsNotFound(err):
		steps = append(steps, step{Change{Create, "ClusterRoleBinding " + reviewerBinding, fmt.Sprintf("%d ServiceAccount(s) may review tokens", len(subjects))}, func(ctx context.Context) error {
			_, err := k.RbacV1().ClusterRoleBindings().Create(ctx, want, metav1.CreateOptions{})
			return ignoreExists(err)
		}})
	case err != nil:
		return nil, err
	case !slices.Equal(crb.Subjects, want.Subjects):
		steps = append(steps, step{Change{Update, "ClusterRoleBinding " + reviewerBinding, "token reviewers changed"}, func(ctx context.Context) error {
			crb.Subjects = want.Subjects
			_, err := k.RbacV1().ClusterRoleBindings().Update(ctx, crb, metav1.UpdateOptions{})
			return err
		}})
	}
	if cfg.KubernetesAuth.TokenReviewer == "reviewer-jwt" {
		if _, err := k.CoreV1().Secrets(ns).Get(ctx, reviewerTokenSecret, metav1.GetOptions{}); apierrors.IsNotFound(err) {
			steps = append(steps, step{Change{Create, "Secret " + ns + "/" + reviewerTokenSecret, "long-lived reviewer JWT"}, func(ctx context.Context) error {
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
func (p *KubernetesAuth) authConfig(ctx context.Context, v *vaultapi.Client) (*step, error) {
	cfg := p.Env.Config
	host := cfg.KubernetesAuth.Host
	if host == "" {
		host = p.Env.KubeHost
	}
	ca := string(p.Env.KubeCA)
	if f := cfg.KubernetesAuth.CACert; f != "" {
		b, err := readFile(f)
		if err != nil {
			return nil, Fail("kubernetesAuth.caCert must be a readable PEM file", "reading %s: %v", f, err)
		}
		ca = string(b)
	}
	path := "auth/" + cfg.KubernetesAuth.Path + "/config"
	reviewer := cfg.KubernetesAuth.TokenReviewer == "reviewer-jwt"
	var why []string
	cur, err := v.Logical().ReadWithContext(ctx, path)
	if err != nil && !isNotFound(err) {
		return nil, vaultErr("reading "+path, err)
	}
	if cur == nil || cur.Data == nil {
		why = append(why, "not configured")
	} else {
		if cur.Data["kubernetes_host"] != host {
			why = append(why, fmt.Sprintf("host %v, want %s", cur.Data["kubernetes_host"], host))
		}
		if strings.TrimSpace(fmt.Sprint(cur.Data["kubernetes_ca_cert"])) != strings.TrimSpace(ca) {
			why = append(why, "cluster CA differs (rotated?)")
		}
		if set, _ := cur.Data["token_reviewer_jwt_set"].(bool); set != reviewer {
			why = append(why, fmt.Sprintf("token reviewer JWT set=%v, want %v", set, reviewer))
		}
	}
	if len(why) == 0 {
		return nil, nil
	}
	return &step{Change{Update, path, strings.Join(why, "; ")}, func(ctx context.Context) error {
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
		_, err := v.Logical().WriteWithContext(ctx, path, data)
		return err
	}}, nil
}

// reviewerJWT waits for the token controller to fill the reviewer Secret.
func (p *KubernetesAuth) reviewerJWT(ctx context.Context) (string, error) {
	ns := p.Env.Config.Vault.Namespace
	deadline := time.Now().Add(time.Minute)
	for {
		s, err := p.Env.Kube.CoreV1().Secrets(ns).Get(ctx, reviewerTokenSecret, metav1.GetOptions{})
		if err == nil && len(s.Data[corev1.ServiceAccountTokenKey]) > 0 {
			return string(s.Data[corev1.ServiceAccountTokenKey]), nil
		}
		if time.Now().After(deadline) {
			return "", Fail("check that kube-controller-manager runs its token controller", "Secret %s/%s got no token within a minute", ns, reviewerTokenSecret)
		}
		select {
		case <-ctx.Done():
			return "", ctx.Err()
		case <-time.After(300 * time.Millisecond):
		}
	}
}
