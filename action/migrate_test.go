package action

import (
	"context"
	"errors"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes/fake"

	"github.com/vaultctl/vaultctl/config"
	"github.com/vaultctl/vaultctl/migrate"
	"github.com/vaultctl/vaultctl/phases"
)

func migrateConfig(cs *fake.Clientset) *Configuration {
	c := &config.Config{KV: []config.KVMount{{Path: "secret"}}}
	c.Migration.Entrypoints = []config.MigrationEntrypoint{{Namespace: "shop", Workload: "Deployment/web", Container: "app", Entrypoint: []string{"/from-config"}}}
	config.ApplyDefaults(c)
	return &Configuration{Config: c, Connect: func(_ context.Context, cfg *config.Config) (*phases.Env, error) {
		return &phases.Env{Config: cfg, Kube: cs}, nil
	}}
}

func TestMigratePlanOnlyReads(t *testing.T) {
	cs := fake.NewClientset(
		&corev1.Namespace{ObjectMeta: metav1.ObjectMeta{Name: "shop"}},
		&corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: "db", Namespace: "shop"}, Data: map[string][]byte{"password": []byte("pw-value")}},
		&appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: "web", Namespace: "shop"}, Spec: appsv1.DeploymentSpec{Template: corev1.PodTemplateSpec{Spec: corev1.PodSpec{
			Containers: []corev1.Container{{Name: "app", EnvFrom: []corev1.EnvFromSource{{SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: "db"}}}}}},
		}}}},
	)
	c := migrateConfig(cs)
	flag := migrate.Entrypoint{Workload: migrate.WorkloadID{Kind: "Deployment", Name: "web"}, Container: "app", Argv: []string{"/from-flag"}}
	res, err := MigratePlan(context.Background(), c, MigratePlanOptions{Namespace: "shop", Entrypoints: []migrate.Entrypoint{flag}})
	if err != nil {
		t.Fatal(err)
	}
	if !res.Plan.HasWork() || len(res.Plan.Workloads) != 1 || res.Plan.Workloads[0].Action != migrate.WorkloadMigrate {
		t.Fatalf("plan %+v", res.Plan)
	}
	// The flag's entrypoint wins over the config's.
	args := res.Rewrites[migrate.WorkloadID{Kind: "Deployment", Name: "web"}].Template.Spec.Containers[0].Args
	if len(args) != 1 || args[0] != "/from-flag" {
		t.Errorf("args %q", args)
	}
	for _, a := range cs.Actions() {
		if v := a.GetVerb(); v != "get" && v != "list" {
			t.Errorf("a plan only reads: %s %s", v, a.GetResource().Resource)
		}
		if a.GetResource().Resource == "leases" {
			t.Errorf("a plan takes no lock: %s lease", a.GetVerb())
		}
	}
}

func TestMigratePlanOfAMissingNamespace(t *testing.T) {
	_, err := MigratePlan(context.Background(), migrateConfig(fake.NewClientset()), MigratePlanOptions{Namespace: "shopp"})
	if !errors.Is(err, ErrNoNamespace) {
		t.Fatalf("got %v, want ErrNoNamespace", err)
	}
}
