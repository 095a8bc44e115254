package migrate

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"slices"
	"strings"
	"testing"

	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/runtime"
	"k8s.io/client-go/kubernetes/fake"
)

// fuzzBytes hands out a fuzz input as small decisions; an exhausted input answers zero.
type fuzzBytes struct{ b []byte }

func (f *fuzzBytes) byte() byte {
	if len(f.b) == 0 {
		return 0
	}
	c := f.b[0]
	f.b = f.b[1:]
	return c
}

func (f *fuzzBytes) intn(n int) int { return int(f.byte()) % n }
func (f *fuzzBytes) bool() bool     { return f.byte()&1 == 1 }

// bytes is a value of up to 16 bytes, binary or text, as the input gives.
func (f *fuzzBytes) bytes() []byte {
	n := f.intn(17)
	out := make([]byte, 0, n)
	for range n {
		out = append(out, f.byte())
	}
	return out
}

// fuzzKeys are Secret keys of every shape the planner meets: env names, file names with dots
// and dashes, a name that is neither, and one only a file can carry.
var fuzzKeys = []string{"password", "DB_USER", "tls.crt", "my-key", "config.json", "a", "KEY_1", "..data", ".hidden", "x-y.z"}

// fuzzNamespace builds a random namespace: Secrets (random keys and values, some binary, some of
// kept types), and Deployments, CronJobs and bare Pods reading them through every reference kind,
// optional or not, some naming Secrets that do not exist.
func fuzzNamespace(in []byte) ([]runtime.Object, map[string]bool) {
	f := &fuzzBytes{b: in}
	var objs []runtime.Object
	values := map[string]bool{}
	nSecrets := f.intn(6) + 1
	secretName := func(i int) string { return fmt.Sprintf("s%d", i) }
	types := []corev1.SecretType{corev1.SecretTypeOpaque, corev1.SecretTypeOpaque, corev1.SecretTypeTLS, corev1.SecretTypeDockerConfigJson, "helm.sh/release.v1"}
	for i := range nSecrets {
		s := &corev1.Secret{ObjectMeta: metav1.ObjectMeta{Name: secretName(i), Namespace: ns}, Type: types[f.intn(len(types))], Data: map[string][]byte{}}
		for range f.intn(4) + 1 {
			v := append([]byte(fmt.Sprintf("fz%d-", len(values))), f.bytes()...)
			s.Data[fuzzKeys[f.intn(len(fuzzKeys))]] = v
			values[string(v)] = true
		}
		objs = append(objs, s)
	}
	ref := func() string { return secretName(f.intn(nSecrets + 1)) } // sometimes one that does not exist
	key := func() string { return fuzzKeys[f.intn(len(fuzzKeys))] }
	container := func(name string) corev1.Container {
		c := corev1.Container{Name: name, Image: "example.com/app:1"}
		if f.bool() {
			c.Command = []string{"/app", "--flag=$(X)", "it's"}
		}
		for range f.intn(3) {
			opt := f.bool()
			c.Env = append(c.Env, corev1.EnvVar{Name: strings.ToUpper(strings.NewReplacer(".", "_", "-", "_").Replace(key())) + "_V",
				ValueFrom: &corev1.EnvVarSource{SecretKeyRef: &corev1.SecretKeySelector{LocalObjectReference: corev1.LocalObjectReference{Name: ref()}, Key: key(), Optional: &opt}}})
		}
		if f.bool() {
			opt := f.bool()
			c.EnvFrom = append(c.EnvFrom, corev1.EnvFromSource{Prefix: []string{"", "P_", "p-"}[f.intn(3)], SecretRef: &corev1.SecretEnvSource{LocalObjectReference: corev1.LocalObjectReference{Name: ref()}, Optional: &opt}})
		}
		return c
	}
	spec := func() corev1.PodSpec {
		s := corev1.PodSpec{Containers: []corev1.Container{container("app")}}
		if f.bool() {
			s.InitContainers = []corev1.Container{container("init")}
		}
		if f.bool() {
			s.Containers = append(s.Containers, container("side"))
		}
		for v := range f.intn(3) {
			opt, mode := f.bool(), int32(0o400+f.intn(0o400))
			vol := corev1.Volume{Name: fmt.Sprintf("v%d", v)}
			src := &corev1.SecretVolumeSource{SecretName: ref(), Optional: &opt}
			if f.bool() {
				src.DefaultMode = &mode
			}
			if f.bool() {
				src.Items = []corev1.KeyToPath{{Key: key(), Path: "sub/" + key()}}
			}
			if f.bool() {
				vol.Projected = &corev1.ProjectedVolumeSource{Sources: []corev1.VolumeProjection{{Secret: &corev1.SecretProjection{LocalObjectReference: corev1.LocalObjectReference{Name: src.SecretName}, Items: src.Items, Optional: &opt}}}}
			} else {
				vol.Secret = src
			}
			s.Volumes = append(s.Volumes, vol)
			c := &s.Containers[f.intn(len(s.Containers))]
			c.VolumeMounts = append(c.VolumeMounts, corev1.VolumeMount{Name: vol.Name, MountPath: fmt.Sprintf("/etc/v%d", v)})
		}
		if f.bool() {
			s.ImagePullSecrets = []corev1.LocalObjectReference{{Name: ref()}}
		}
		if f.bool() {
			s.ServiceAccountName = "app"
		}
		return s
	}
	for i := range f.intn(4) + 1 {
		name := fmt.Sprintf("w%d", i)
		labels := map[string]string{"app": name}
		t := corev1.PodTemplateSpec{ObjectMeta: metav1.ObjectMeta{Labels: labels}, Spec: spec()}
		switch f.intn(3) {
		case 0:
			objs = append(objs, &appsv1.Deployment{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: appsv1.DeploymentSpec{Selector: &metav1.LabelSelector{MatchLabels: labels}, Template: t}})
		case 1:
			t.Spec.RestartPolicy = corev1.RestartPolicyOnFailure
			objs = append(objs, &batchv1.CronJob{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns},
				Spec: batchv1.CronJobSpec{Schedule: "@daily", JobTemplate: batchv1.JobTemplateSpec{Spec: batchv1.JobSpec{Template: t}}}})
		default:
			objs = append(objs, &corev1.Pod{ObjectMeta: metav1.ObjectMeta{Name: name, Namespace: ns, Labels: labels}, Spec: t.Spec})
		}
	}
	return objs, values
}

// FuzzPlanNamespace feeds the planner random namespaces. It never panics or fails on what the
// API server would accept, and the plan is always consistent: every Secret a workload reads is
// classified (or reported missing), every consumer is listed, every migrated workload has a
// role, a policy and a rewrite, and no value reaches the plan.
func FuzzPlanNamespace(f *testing.F) {
	f.Add([]byte{})
	f.Add([]byte{5, 3, 1, 2, 3, 4, 5, 6, 7, 8, 1, 9, 0xff, 0xfe, 0, 3, 1, 1, 1, 1, 1, 1, 1, 1, 1, 1})
	f.Add(bytes.Repeat([]byte{1, 2, 3, 0xc3, 7}, 40))
	f.Fuzz(func(t *testing.T, in []byte) {
		objs, values := fuzzNamespace(in)
		opts := fixtureOptions
		opts.AuthPath = "auth/kubernetes"
		np, err := PlanNamespace(context.Background(), fake.NewClientset(objs...), nil, ns, opts)
		if err != nil {
			t.Fatalf("PlanNamespace: %v", err)
		}
		p := np.Plan
		secrets := map[string]SecretPlan{}
		for _, s := range p.Secrets {
			secrets[s.Name] = s
		}
		for _, o := range objs {
			if s, ok := o.(*corev1.Secret); ok {
				if _, ok := secrets[s.Name]; !ok {
					t.Errorf("Secret %s is not in the plan", s.Name)
				}
			}
		}
		for _, w := range np.Inventory.Workloads {
			for _, r := range w.References {
				sp, ok := secrets[r.Secret]
				if !ok {
					continue // missing: a problem or a warning, checked below
				}
				if !slices.Contains(sp.Consumers, w.ID.String()) {
					t.Errorf("%s reads Secret %s (%s) but is not among its consumers %v", w.ID, r.Secret, r.Kind, sp.Consumers)
				}
			}
		}
		for _, wp := range p.Workloads {
			id := WorkloadID{Kind: wp.Kind, Name: wp.Name}
			if wp.Action != WorkloadMigrate {
				continue
			}
			if wp.Role == "" || wp.Policy == "" || len(wp.KVPaths) == 0 {
				t.Errorf("%s is migrated without role, policy or paths: %+v", id, wp)
			}
			if wp.ServiceAccount == DefaultServiceAccount {
				t.Errorf("%s is migrated as ServiceAccount default", id)
			}
			if _, ok := np.Rewrites[id]; !ok {
				t.Errorf("%s is migrated but has no rewritten template", id)
			}
		}
		doc, err := json.Marshal(p)
		if err != nil {
			t.Fatal(err)
		}
		for v := range values {
			if len(v) >= 8 && bytes.Contains(doc, []byte(v)) {
				t.Fatalf("a Secret value reached the plan: %q", v)
			}
		}
	})
}
