// Command servernoop times a no-op `vaultctl apply --only tls,server` against a no-op Helm upgrade
// of the same chart and values done directly through the Helm SDK, on a running cluster (the
// sandbox), and prints both medians and their ratio. bench/server-noop.sh builds and runs it.
//
// The vaultctl side is the whole command as a user runs it: a fresh process that loads the
// config, checks the TLS Secrets, renders the chart, compares it with the deployed release and
// inspects the pods, and writes nothing. The Helm side is what `helm upgrade` does with the same
// chart and values: a fresh action.Configuration (as a new helm process has), then an upgrade
// that renders, diffs, patches nothing that changed and records a new revision.
package main

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"flag"
	"fmt"
	"os"
	"os/exec"
	"path/filepath"
	"sort"
	"time"

	"helm.sh/helm/v3/pkg/action"
	corev1 "k8s.io/api/core/v1"
	apierrors "k8s.io/apimachinery/pkg/api/errors"
	"k8s.io/apimachinery/pkg/api/resource"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/cli-runtime/pkg/genericclioptions"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/charts"
	"github.com/vaultctl/vaultctl/config"
)

func main() {
	cfgPath := flag.String("config", "", "vaultctl.yaml of the cluster to measure (required)")
	bin := flag.String("vaultctl", "bin/vaultctl", "vaultctl binary")
	runs := flag.Int("n", 7, "timed runs of each side")
	pvDir := flag.String("hostpath-pvs", "", "create hostPath PersistentVolumes under this directory, pre-bound to the server's claims (clusters without a provisioner)")
	cleanup := flag.Bool("cleanup", false, "uninstall the release and delete its namespace, claims and the volumes created here afterwards")
	flag.Parse()
	if err := run(*cfgPath, *bin, *runs, *pvDir, *cleanup); err != nil {
		fmt.Fprintln(os.Stderr, "servernoop:", err)
		os.Exit(1)
	}
}

func run(cfgPath, bin string, runs int, pvDir string, cleanup bool) (err error) {
	if cfgPath == "" || runs < 1 {
		return errors.New("usage: servernoop -config vaultctl.yaml [-vaultctl bin/vaultctl] [-n 7]")
	}
	cfg, err := config.LoadFile(cfgPath)
	if err != nil {
		return err
	}
	if cfg.External() {
		return errors.New("the config is in external mode: there is no server release to measure")
	}
	ns := cfg.Vault.Namespace
	kube, err := clientset(cfg)
	if err != nil {
		return err
	}
	if pvDir != "" {
		if err := createVolumes(kube, cfg, pvDir); err != nil {
			return err
		}
	}
	if cleanup {
		defer func() {
			if cerr := tearDown(kube, cfg, pvDir != ""); cerr != nil && err == nil {
				err = cerr
			}
		}()
	}

	// Warm up and converge: the first apply may install; the next one must change nothing.
	if _, err := vaultctlApply(bin, cfgPath, false); err != nil {
		return fmt.Errorf("converging: %w", err)
	}
	before, err := lastRevision(cfg)
	if err != nil {
		return err
	}

	var vc []time.Duration
	for range runs {
		d, err := vaultctlApply(bin, cfgPath, true)
		if err != nil {
			return err
		}
		vc = append(vc, d)
	}
	after, err := lastRevision(cfg)
	if err != nil {
		return err
	}
	if after != before {
		return fmt.Errorf("no-op vaultctl apply wrote revisions %d..%d of release %s", before+1, after, charts.ServerRelease)
	}

	vals := charts.ServerValues(cfg)
	var hs []time.Duration
	for range runs {
		start := time.Now()
		ac, err := actionConfig(cfg)
		if err != nil {
			return err
		}
		ch, err := charts.Vault()
		if err != nil {
			return err
		}
		up := action.NewUpgrade(ac)
		up.Namespace = ns
		up.MaxHistory = 10
		if _, err := up.Run(charts.ServerRelease, ch, vals); err != nil {
			return fmt.Errorf("helm SDK upgrade: %w", err)
		}
		hs = append(hs, time.Since(start))
	}
	// The SDK upgrades rendered the same manifest: vaultctl must still see nothing to do.
	if _, err := vaultctlApply(bin, cfgPath, true); err != nil {
		return fmt.Errorf("after the SDK upgrades: %w", err)
	}

	mv, mh := median(vc), median(hs)
	fmt.Printf("no-op vaultctl apply --only tls,server: median %v over %d runs (min %v, max %v); release stayed at revision %d\n",
		mv.Round(time.Millisecond), runs, minDur(vc).Round(time.Millisecond), maxDur(vc).Round(time.Millisecond), before)
	fmt.Printf("no-op Helm SDK upgrade (same chart, same values): median %v over %d runs (min %v, max %v); each wrote a revision\n",
		mh.Round(time.Millisecond), runs, minDur(hs).Round(time.Millisecond), maxDur(hs).Round(time.Millisecond))
	fmt.Printf("ratio vaultctl/helm: %.2f\n", float64(mv)/float64(mh))
	return nil
}

// vaultctlApply runs `vaultctl apply --only tls,server -o json`; with noop it fails unless both
// phases were up to date.
func vaultctlApply(bin, cfgPath string, noop bool) (time.Duration, error) {
	cmd := exec.Command(bin, "apply", "-c", cfgPath, "--only", "tls,server", "--non-interactive", "-o", "json")
	var out, errb bytes.Buffer
	cmd.Stdout, cmd.Stderr = &out, &errb
	start := time.Now()
	err := cmd.Run()
	d := time.Since(start)
	if err != nil {
		return d, fmt.Errorf("vaultctl apply: %v\n%s%s", err, out.String(), errb.String())
	}
	var res struct {
		OK     bool `json:"ok"`
		Phases []struct {
			Phase  string `json:"phase"`
			Status string `json:"status"`
		} `json:"phases"`
	}
	if err := json.Unmarshal(out.Bytes(), &res); err != nil {
		return d, fmt.Errorf("vaultctl apply output: %v\n%s", err, out.String())
	}
	if !res.OK {
		return d, fmt.Errorf("vaultctl apply failed:\n%s", out.String())
	}
	if noop {
		for _, p := range res.Phases {
			if (p.Phase == "tls" || p.Phase == "server") && p.Status != "up to date" {
				return d, fmt.Errorf("phase %s is %q, not a no-op", p.Phase, p.Status)
			}
		}
	}
	return d, nil
}

func actionConfig(cfg *config.Config) (*action.Configuration, error) {
	f := genericclioptions.NewConfigFlags(false)
	ns := cfg.Vault.Namespace
	f.KubeConfig, f.Context, f.Namespace = &cfg.Cluster.Kubeconfig, &cfg.Cluster.Context, &ns
	ac := new(action.Configuration)
	if err := ac.Init(f, ns, "secret", func(string, ...any) {}); err != nil {
		return nil, err
	}
	return ac, nil
}

func lastRevision(cfg *config.Config) (int, error) {
	ac, err := actionConfig(cfg)
	if err != nil {
		return 0, err
	}
	r, err := ac.Releases.Last(charts.ServerRelease)
	if err != nil {
		return 0, fmt.Errorf("release %s/%s: %w", cfg.Vault.Namespace, charts.ServerRelease, err)
	}
	return r.Version, nil
}

func median(d []time.Duration) time.Duration {
	s := append([]time.Duration(nil), d...)
	sort.Slice(s, func(i, j int) bool { return s[i] < s[j] })
	return s[len(s)/2]
}

func minDur(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = min(m, x)
	}
	return m
}

func maxDur(d []time.Duration) time.Duration {
	m := d[0]
	for _, x := range d {
		m = max(m, x)
	}
	return m
}

func clientset(cfg *config.Config) (kubernetes.Interface, error) {
	f := genericclioptions.NewConfigFlags(false)
	f.KubeConfig, f.Context = &cfg.Cluster.Kubeconfig, &cfg.Cluster.Context
	rc, err := f.ToRESTConfig()
	if err != nil {
		return nil, err
	}
	return kubernetes.NewForConfig(rc)
}

// createVolumes makes one hostPath PersistentVolume per claim of the server StatefulSet,
// pre-bound to that claim, so the bench neither needs a provisioner nor takes volumes meant for
// other installs.
func createVolumes(kube kubernetes.Interface, cfg *config.Config, dir string) error {
	ctx := context.Background()
	v := cfg.Vault
	sizes := map[string]string{"data": v.Storage.DataSize, "audit": v.Storage.AuditSize}
	for i := range v.Replicas {
		for _, claim := range []string{"data", "audit"} {
			pvc := fmt.Sprintf("%s-%s", claim, charts.PodName(i))
			hostPath := filepath.Join(dir, v.Namespace, pvc)
			pv := &corev1.PersistentVolume{
				ObjectMeta: metav1.ObjectMeta{Name: volumeName(v.Namespace, pvc), Labels: map[string]string{"app.kubernetes.io/managed-by": "vaultctl-bench"}},
				Spec: corev1.PersistentVolumeSpec{
					Capacity:                      corev1.ResourceList{corev1.ResourceStorage: resource.MustParse(sizes[claim])},
					AccessModes:                   []corev1.PersistentVolumeAccessMode{corev1.ReadWriteOnce},
					PersistentVolumeReclaimPolicy: corev1.PersistentVolumeReclaimRetain,
					StorageClassName:              v.Storage.StorageClass,
					ClaimRef:                      &corev1.ObjectReference{Kind: "PersistentVolumeClaim", APIVersion: "v1", Namespace: v.Namespace, Name: pvc},
					PersistentVolumeSource:        corev1.PersistentVolumeSource{HostPath: &corev1.HostPathVolumeSource{Path: hostPath}},
				},
			}
			if _, err := kube.CoreV1().PersistentVolumes().Create(ctx, pv, metav1.CreateOptions{}); err != nil && !apierrors.IsAlreadyExists(err) {
				return fmt.Errorf("creating PersistentVolume %s: %w", pv.Name, err)
			}
		}
	}
	return nil
}

func volumeName(ns, claim string) string { return "bench-" + ns + "-" + claim }

// tearDown removes what the bench installed.
func tearDown(kube kubernetes.Interface, cfg *config.Config, volumes bool) error {
	ctx := context.Background()
	ns := cfg.Vault.Namespace
	ac, err := actionConfig(cfg)
	if err != nil {
		return err
	}
	un := action.NewUninstall(ac)
	if _, err := un.Run(charts.ServerRelease); err != nil {
		return fmt.Errorf("uninstalling %s/%s: %w", ns, charts.ServerRelease, err)
	}
	if err := kube.CoreV1().Namespaces().Delete(ctx, ns, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
		return err
	}
	if volumes {
		for i := range cfg.Vault.Replicas {
			for _, claim := range []string{"data", "audit"} {
				name := volumeName(ns, fmt.Sprintf("%s-%s", claim, charts.PodName(i)))
				if err := kube.CoreV1().PersistentVolumes().Delete(ctx, name, metav1.DeleteOptions{}); err != nil && !apierrors.IsNotFound(err) {
					return err
				}
			}
		}
	}
	return nil
}
