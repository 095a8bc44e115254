// Command migratebench is bench/migrate.sh's helper: it builds the namespaces the bench migrates,
// obtains a Vault token for the manual loop, and times the raw floor (N KV v2 writes through the
// API at a given concurrency). Values are generated here and never printed.
//
//	migratebench seed  -ns bench -n 1000 [-label k=v]   N Secrets, N/5 Deployments reading 5 each
//	migratebench token -vault-ns vault -out FILE         a vaultctl-admin token in FILE (mode 0600)
//	migratebench floor -ns bench -mount secret -prefix bench-floor -concurrency 16
//	migratebench settle -ns bench                        wait until the Deployment controller saw every Deployment
//	migratebench rollfloor -ns bench -concurrency 16     patch every Deployment's template, time until each is observed
package main

import (
	"context"
	"crypto/rand"
	"encoding/hex"
	"errors"
	"flag"
	"fmt"
	"os"
	"strings"
	"sync"
	"time"

	vaultapi "github.com/hashicorp/vault/api"
	appsv1 "k8s.io/api/apps/v1"
	authv1 "k8s.io/api/authentication/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/types"
	"k8s.io/client-go/kubernetes"
	"k8s.io/client-go/tools/clientcmd"

	"github.com/vaultctl/vaultctl/internal/vault"
)

// secretsPerWorkload is how many Secrets each Deployment reads (envFrom, a keyed env ref, a
// volume, a second envFrom, a volume with items).
const secretsPerWorkload = 5

func main() {
	if len(os.Args) < 2 {
		fmt.Fprintln(os.Stderr, "usage: migratebench seed|token|floor [flags]")
		os.Exit(2)
	}
	fs := flag.NewFlagSet(os.Args[1], flag.ExitOnError)
	ns := fs.String("ns", "bench", "namespace")
	n := fs.Int("n", 1000, "Secrets (a multiple of 5)")
	label := fs.String("label", "", "k=v label for the namespace (the injector's namespaceLabels)")
	vaultNS := fs.String("vault-ns", "vault", "Vault's namespace (where the vaultctl ServiceAccount is)")
	out := fs.String("out", "", "file for the token")
	mount := fs.String("mount", "secret", "KV v2 mount")
	prefix := fs.String("prefix", "bench-floor", "KV path prefix under the mount for the floor's writes")
	conc := fs.Int("concurrency", 16, "writes at once")
	fs.Parse(os.Args[2:])

	cfg, err := clientcmd.BuildConfigFromFlags("", os.Getenv("KUBECONFIG"))
	if err != nil {
		fail(err)
	}
	cfg.QPS, cfg.Burst = 500, 1000 // building the namespace is setup, not measured
	cs, err := kubernetes.NewForConfig(cfg)
	if err != nil {
		fail(err)
	}
	ctx := context.Background()
	switch os.Args[1] {
	case "seed":
		err = seed(ctx, cs, *ns, *n, *label)
	case "token":
		err = token(ctx, cs, *vaultNS, *out)
	case "floor":
		err = floor(ctx, cs, *ns, *mount, *prefix, *conc)
	case "settle":
		err = settle(ctx, cs, *ns)
	case "rollfloor":
		err = rollFloor(ctx, cs, *ns, *conc)
	default:
		err = fmt.Errorf("unknown subcommand %q", os.Args[1])
	}
	if err != nil {
		fail(err)
	}
}

func fail(err error) {
	fmt.Fprintln(os.Stderr, "migratebench:", err)
	os.Exit(1)
}

// parallel runs f(0..n-1), conc at once, and returns the first error.
func parallel(n, conc int, f func(i int) error) error {
	sem := make(chan struct{}, conc)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var first error
	for i := range n {
		wg.Add(1)
		sem <- struct{}{}
		go func() {
			defer func() { <-sem; wg.Done() }()
			if err := f(i); err != nil {
				mu.Lock()
				if first == nil {
					first = err
				}
				mu.Unlock()
			}
		}()
	}
	wg.Wait()
	return first
}

func randomHex(n int) string {
	b := make([]byte, n)
	rand.Read(b)
	return hex.EncodeToString(b)
}

func secretName(i int) string { return fmt.Sprintf("cred-%04d", i) }

// seed creates the namespace, n Secrets of three keys each, and n/5 Deployments with
// replicas 0, each reading its 5 Secrets through every kind of reference migrate rewrites.
func seed(ctx context.Context, cs kubernetes.Interface, ns string, n int, label string) error {
	if n < secretsPerWorkload || n%secretsPerWorkload != 0 {
		return fmt.Errorf("-n must be a positive multiple of %d, not %d", secretsPerWorkload, n)
	}
	nsObj := &corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: ns, Labels: map[string]string{}}}
	if label != "" {
		k, v, ok := strings.Cut(label, "=")
		if !ok {
			return fmt.Errorf("-label %q is not k=v", label)
		}
		nsObj.Labels[k] = v
	}
	if _, err := cs.CoreV1().Namespaces().Create(ctx, nsObj, metav1.CreateOptions{}); err != nil {
		return fmt.Errorf("creating namespace %s: %w", ns, err)
	}
	err := parallel(n, 32, func(i int) error {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(i), Namespace: ns}, Type: corev1.SecretTypeOpaque,
			Data: map[string][]byte{
				"DB_USER":     []byte("user-" + randomHex(4)),
				"DB_PASSWORD": []byte(randomHex(16)),
				"CONFIG_JSON": []byte(`{"endpoint":"https://db.internal:5432","pool":` + fmt.Sprint(i%50) + `,"token":"` + randomHex(24) + `"}`),
			}}
		_, err := cs.CoreV1().Secrets(ns).Create(ctx, s, metav1.CreateOptions{})
		return err
	})
	if err != nil {
		return fmt.Errorf("creating Secrets: %w", err)
	}
	return parallel(n/secretsPerWorkload, 32, func(w int) error {
		_, err := cs.AppsV1().Deployments(ns).Create(ctx, deployment(ns, w), metav1.CreateOptions{})
		return err
	})
}

func deployment(ns string, w int) *appsv1.Deployment {
	name := fmt.Sprintf("app-%04d", w)
	s := func(k int) string { return secretName(w*secretsPerWorkload + k) }
	zero := int32(0)
	labels := map[string]string{"app": name}
	return &appsv1.Deployment{
		ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
		Spec: appsv1.DeploymentSpec{
			Replicas: &zero,
			Selector: &metav1.LabelSelector{MatchLabels: labels},
			Template: corev1.PodTemplateSpec{
				ObjectMeta: metav1.ObjectMeta{Labels: labels},
				Spec: corev1.PodSpec{
					Containers: []corev1.Container{{
						Name:    "app",
						Image:   "registry.example/app:1.0",
						Command: []string{"/app/server"},
						Args:    []string{"--listen=:8080"},
						EnvFrom: []corev1.EnvFromSource{
							{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s(0)}}},
							{Prefix: "CACHE_", SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: s(3)}}},
						},
						Env: []corev1.EnvVar{{Name: "QUEUE_PASSWORD", ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{
							LocalObjectReference: corev1.LocalObjectReference{Name: s(1)}, Key: "DB_PASSWORD"}}}},
						VolumeMounts: []corev1.VolumeMount{
							{Name: "tls", MountPath: "/etc/app/tls", ReadOnly: true},
							{Name: "conf", MountPath: "/etc/app/conf", ReadOnly: true},
						},
					}},
					Volumes: []corev1.Volume{
						{Name: "tls", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s(2)}}},
						{Name: "conf", VolumeSource: corev1.VolumeSource{Secret: &corev1.SecretVolumeSource{SecretName: s(4),
							Items: []corev1.KeyToPath{{Key: "CONFIG_JSON", Path: "config.json"}}}}},
					},
				},
			},
		},
	}
}

// token logs in as vaultctl-admin the way vaultctl does (a TokenRequest token for the vaultctl
// ServiceAccount at the Kubernetes auth method) and writes the Vault token to out, mode 0600.
func token(ctx context.Context, cs kubernetes.Interface, vaultNS, out string) error {
	if out == "" {
		return errors.New("-out is required")
	}
	exp := int64(3600)
	tr, err := cs.CoreV1().ServiceAccounts(vaultNS).CreateToken(ctx, "vaultctl",
		&authv1.TokenRequest{Spec: authv1.TokenRequestSpec{ExpirationSeconds: &exp}}, metav1.CreateOptions{})
	if err != nil {
		return fmt.Errorf("TokenRequest for %s/vaultctl: %w", vaultNS, err)
	}
	vc, err := vaultapi.NewClient(vaultapi.DefaultConfig())
	if err != nil {
		return err
	}
	sec, err := vc.Logical().WriteWithContext(ctx, "auth/kubernetes/login", map[string]any{"role": "vaultctl-admin", "jwt": tr.Status.Token})
	if err != nil {
		return fmt.Errorf("vaultctl-admin login: %w", err)
	}
	return os.WriteFile(out, []byte(sec.Auth.ClientToken), 0o600)
}

// floor reads the namespace's Secrets (not timed), then writes each as one KV v2 entry at
// MOUNT/PREFIX/NAME, conc at once, and prints the seconds the writes took. VAULT_ADDR,
// VAULT_CACERT and VAULT_TOKEN come from the environment.
func floor(ctx context.Context, cs kubernetes.Interface, ns, mount, prefix string, conc int) error {
	list, err := cs.CoreV1().Secrets(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	var secrets []corev1.Secret
	for _, s := range list.Items {
		if s.Type == corev1.SecretTypeOpaque {
			secrets = append(secrets, s)
		}
	}
	// vaultctl's own client and transport (the one migrate uses), so the floor differs from
	// migrate only in what is sent.
	ca, err := os.ReadFile(os.Getenv("VAULT_CACERT"))
	if err != nil {
		return fmt.Errorf("VAULT_CACERT: %w", err)
	}
	vc, err := vault.HTTPDialer{}.Dial(vault.Endpoint{Address: os.Getenv("VAULT_ADDR"), CAPEM: ca})
	if err != nil {
		return err
	}
	vc.SetToken(os.Getenv("VAULT_TOKEN"))
	start := time.Now()
	err = parallel(len(secrets), conc, func(i int) error {
		data := map[string]any{}
		for k, v := range secrets[i].Data {
			data[k] = string(v)
		}
		_, err := vc.KVWrite(ctx, mount, prefix+"/"+secrets[i].Name, data, -1)
		return err
	})
	took := time.Since(start)
	if err != nil {
		return fmt.Errorf("KV write: %w", err)
	}
	fmt.Printf("%.3f %d\n", took.Seconds(), len(secrets))
	return nil
}

// observed reports whether the Deployment controller has acted on d's current spec (with
// replicas 0 that is the whole rollout: migrate's Rollout asks the same).
func observed(d *appsv1.Deployment) bool {
	return d.Status.ObservedGeneration >= d.Generation && d.Status.UpdatedReplicas >= *d.Spec.Replicas
}

// settle waits until every Deployment in ns is observed, so that no timed step pays for the
// controller's backlog of freshly created Deployments.
func settle(ctx context.Context, cs kubernetes.Interface, ns string) error {
	deadline := time.Now().Add(10 * time.Minute)
	for {
		list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
		if err != nil {
			return err
		}
		waiting := 0
		for i := range list.Items {
			if !observed(&list.Items[i]) {
				waiting++
			}
		}
		if waiting == 0 {
			return nil
		}
		if time.Now().After(deadline) {
			return fmt.Errorf("%d Deployments in %s not observed by the controller after 10 minutes", waiting, ns)
		}
		time.Sleep(200 * time.Millisecond)
	}
}

// rollFloor is the controller's share of migrate's patch-and-rollout step: every Deployment's pod
// template gets a changed annotation, conc at once, each followed (polling as migrate does:
// 50 ms, doubling to 1 s) until the controller observed it. Prints the seconds.
func rollFloor(ctx context.Context, cs kubernetes.Interface, ns string, conc int) error {
	list, err := cs.AppsV1().Deployments(ns).List(ctx, metav1.ListOptions{})
	if err != nil {
		return err
	}
	stamp := fmt.Sprint(time.Now().UnixNano())
	patch := []byte(`{"spec":{"template":{"metadata":{"annotations":{"bench.vaultctl.io/rolled":"` + stamp + `"}}}}}`)
	start := time.Now()
	err = parallel(len(list.Items), conc, func(i int) error {
		name := list.Items[i].Name
		if _, err := cs.AppsV1().Deployments(ns).Patch(ctx, name, types.StrategicMergePatchType, patch, metav1.PatchOptions{}); err != nil {
			return err
		}
		pause := 50 * time.Millisecond
		for {
			d, err := cs.AppsV1().Deployments(ns).Get(ctx, name, metav1.GetOptions{})
			if err != nil {
				return err
			}
			if observed(d) {
				return nil
			}
			time.Sleep(pause)
			pause = min(2*pause, time.Second)
		}
	})
	if err != nil {
		return err
	}
	fmt.Printf("%.3f %d\n", time.Since(start).Seconds(), len(list.Items))
	return nil
}
