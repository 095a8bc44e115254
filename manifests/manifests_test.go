package manifests

import (
	"bytes"
	"errors"
	"io"
	"io/fs"
	"strings"
	"testing"

	"gopkg.in/yaml.v3"
)

func decodeAll(t *testing.T, data []byte) []map[string]any {
	t.Helper()
	var out []map[string]any
	dec := yaml.NewDecoder(bytes.NewReader(data))
	for {
		var m map[string]any
		err := dec.Decode(&m)
		if errors.Is(err, io.EOF) {
			return out
		}
		if err != nil {
			t.Fatal(err)
		}
		out = append(out, m)
	}
}

func get(m any, path ...string) any {
	for _, p := range path {
		mm, ok := m.(map[string]any)
		if !ok {
			return nil
		}
		m = mm[p]
	}
	return m
}

func TestAdmissionPolicy(t *testing.T) {
	docs := decodeAll(t, AdmissionPolicy())
	if len(docs) != 2 {
		t.Fatalf("%d documents, want the policy and its binding", len(docs))
	}
	policy, binding := docs[0], docs[1]
	if policy["kind"] != "ValidatingAdmissionPolicy" || binding["kind"] != "ValidatingAdmissionPolicyBinding" ||
		policy["apiVersion"] != "admissionregistration.k8s.io/v1" || binding["apiVersion"] != "admissionregistration.k8s.io/v1" {
		t.Fatalf("kinds %v %v", policy["kind"], binding["kind"])
	}
	if get(binding, "spec", "policyName") != get(policy, "metadata", "name") {
		t.Error("binding does not name the policy")
	}
	if get(binding, "spec", "matchResources", "namespaceSelector", "matchLabels", MigratedLabel) != "true" {
		t.Errorf("binding is not switched by %s=true", MigratedLabel)
	}
	if a := get(binding, "spec", "validationActions"); len(a.([]any)) != 1 || a.([]any)[0] != "Deny" {
		t.Errorf("validationActions %v", a)
	}
	rule := get(policy, "spec", "matchConstraints", "resourceRules").([]any)[0]
	if ops := get(rule, "operations").([]any); len(ops) != 1 || ops[0] != "CREATE" {
		t.Errorf("operations %v: only new Secrets are denied", ops)
	}
	var allowed string
	for _, v := range get(policy, "spec", "variables").([]any) {
		if get(v, "name") == "allowedTypes" {
			allowed = get(v, "expression").(string)
		}
	}
	for _, typ := range []string{"helm.sh/release.v1", "kubernetes.io/dockerconfigjson", "kubernetes.io/service-account-token", "kubernetes.io/tls"} {
		if !strings.Contains(allowed, "'"+typ+"'") {
			t.Errorf("type %s is not exempt: %s", typ, allowed)
		}
	}
	if strings.Contains(allowed, "Opaque") {
		t.Error("Opaque must not be exempt")
	}
}

func TestFS(t *testing.T) {
	names, err := fs.Glob(FS(), "admission/*.yaml")
	if err != nil || len(names) == 0 {
		t.Fatalf("embedded admission manifests: %v %v", names, err)
	}
	if b, err := Read(AdmissionPolicyFile); err != nil || !bytes.Equal(b, AdmissionPolicy()) {
		t.Fatal("Read and AdmissionPolicy disagree")
	}
}
