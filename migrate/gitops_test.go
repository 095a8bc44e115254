package migrate

import (
	"encoding/json"
	"os"
	"path/filepath"
	"strings"
	"testing"

	jsonpatch "github.com/evanphx/json-patch"
	appsv1 "k8s.io/api/apps/v1"
	batchv1 "k8s.io/api/batch/v1"
	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"sigs.k8s.io/yaml"
)

// The patch written for the repository must produce exactly the template migrate would have
// set live, whatever the original template held.
func TestGitOpsPatchProducesTheTargetTemplate(t *testing.T) {
	orig := wlTemplate("default")
	orig.Spec.Volumes = nil
	target := wlTemplate("api")
	target.Annotations = map[string]string{"vault.hashicorp.com/agent-inject": "true"}
	dep := appsv1.Deployment{TypeMeta: metav1.TypeMeta{APIVersion: "apps/v1", Kind: "Deployment"}, ObjectMeta: metav1.ObjectMeta{Name: "api"}, Spec: appsv1.DeploymentSpec{Template: orig}}
	cron := batchv1.CronJob{TypeMeta: metav1.TypeMeta{APIVersion: "batch/v1", Kind: "CronJob"}, ObjectMeta: metav1.ObjectMeta{Name: "report"}}
	cron.Spec.JobTemplate.Spec.Template = orig

	dir := t.TempDir()
	files, err := WriteGitOps(dir, "team-a", map[WorkloadID]corev1.PodTemplateSpec{{"Deployment", "api"}: target, {"CronJob", "report"}: target})
	if err != nil || len(files) != 3 {
		t.Fatalf("WriteGitOps = %v, %v", files, err)
	}
	apply := func(file string, obj any, into any) {
		t.Helper()
		body, err := os.ReadFile(filepath.Join(dir, file))
		if err != nil {
			t.Fatal(err)
		}
		pj, err := yaml.YAMLToJSON(body)
		if err != nil {
			t.Fatal(err)
		}
		p, err := jsonpatch.DecodePatch(pj)
		if err != nil {
			t.Fatal(err)
		}
		doc, _ := json.Marshal(obj)
		out, err := p.Apply(doc)
		if err != nil {
			t.Fatalf("%s does not apply: %v", file, err)
		}
		if err := json.Unmarshal(out, into); err != nil {
			t.Fatal(err)
		}
	}
	var d appsv1.Deployment
	apply("deployment-api.patch.yaml", dep, &d)
	if TemplateHash(d.Spec.Template) != TemplateHash(target) {
		t.Fatalf("patched Deployment template %+v, want %+v", d.Spec.Template, target)
	}
	var c batchv1.CronJob
	apply("cronjob-report.patch.yaml", cron, &c)
	if TemplateHash(c.Spec.JobTemplate.Spec.Template) != TemplateHash(target) {
		t.Fatal("patched CronJob template differs from the target")
	}
	frag, _ := os.ReadFile(filepath.Join(dir, "kustomization-patches.yaml"))
	if !strings.Contains(string(frag), "path: deployment-api.patch.yaml") || !strings.Contains(string(frag), "kind: CronJob") {
		t.Fatalf("kustomization fragment:\n%s", frag)
	}
	if _, err := GitOpsPatches("team-a", map[WorkloadID]corev1.PodTemplateSpec{{"Pod", "x"}: target}); err == nil {
		t.Fatal("a bare Pod got a repository patch")
	}
}
