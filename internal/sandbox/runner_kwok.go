package sandbox

// kwok plays the kubelet API of the fake nodes, so `kubectl port-forward` and `kubectl logs` of a
// pod go API server -> kwok. kwok v0.8.0 answers them only as its PortForward and Logs resources
// say (kwok.x-k8s.io/v1alpha1, read from the API when kwok runs with --enable-crds). The sandbox
// installs the two CRDs before kwok starts, and the runner keeps one PortForward (to the pod's
// loopback address) and one Logs (the pod's log in the container-runtime format) per Vault pod,
// named like the pod, which is how kwok finds them.

import (
	"context"
	"fmt"
	"time"

	apierrors "k8s.io/apimachinery/pkg/api/errors"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/apis/meta/v1/unstructured"
	"k8s.io/apimachinery/pkg/runtime/schema"
	"k8s.io/client-go/dynamic"
)

const kwokGroup = "kwok.x-k8s.io"

// kwokCRDs are the kwok kinds the sandbox enables (kwok's --enable-crds takes the kinds).
var kwokCRDs = []struct{ kind, plural, singular string }{
	{"PortForward", "portforwards", "portforward"},
	{"Logs", "logs", "logs"},
}

var (
	crdGVR         = schema.GroupVersionResource{Group: "apiextensions.k8s.io", Version: "v1", Resource: "customresourcedefinitions"}
	portForwardGVR = schema.GroupVersionResource{Group: kwokGroup, Version: "v1alpha1", Resource: "portforwards"}
	logsGVR        = schema.GroupVersionResource{Group: kwokGroup, Version: "v1alpha1", Resource: "logs"}
)

func kwokObjectGVRs() []schema.GroupVersionResource {
	return []schema.GroupVersionResource{portForwardGVR, logsGVR}
}

// kwokEnableCRDs is the value of kwok's --enable-crds.
func kwokEnableCRDs() string {
	s := ""
	for i, c := range kwokCRDs {
		if i > 0 {
			s += ","
		}
		s += c.kind
	}
	return s
}

// kwokCRD renders a minimal CustomResourceDefinition: the kind's names, namespaced, one served
// version whose schema keeps every field (kwok validates what it reads).
func kwokCRD(kind, plural, singular string) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": "apiextensions.k8s.io/v1",
		"kind":       "CustomResourceDefinition",
		"metadata": map[string]any{
			"name":   plural + "." + kwokGroup,
			"labels": map[string]any{managedByLabel: managedByValue},
		},
		"spec": map[string]any{
			"group": kwokGroup,
			"scope": "Namespaced",
			"names": map[string]any{"kind": kind, "listKind": kind + "List", "plural": plural, "singular": singular},
			"versions": []any{map[string]any{
				"name": "v1alpha1", "served": true, "storage": true,
				"subresources": map[string]any{"status": map[string]any{}},
				"schema": map[string]any{"openAPIV3Schema": map[string]any{
					"type": "object",
					"properties": map[string]any{
						"spec":   map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
						"status": map[string]any{"type": "object", "x-kubernetes-preserve-unknown-fields": true},
					},
				}},
			}},
		},
	}}
}

// installKwokCRDs creates the CRDs (keeping existing ones) and waits until they are served.
func installKwokCRDs(ctx context.Context, dc dynamic.Interface) error {
	for _, c := range kwokCRDs {
		_, err := dc.Resource(crdGVR).Create(ctx, kwokCRD(c.kind, c.plural, c.singular), metav1.CreateOptions{})
		if err != nil && !apierrors.IsAlreadyExists(err) {
			return fmt.Errorf("create CRD %s.%s: %w", c.plural, kwokGroup, err)
		}
	}
	deadline := time.Now().Add(time.Minute)
	for _, c := range kwokCRDs {
		for {
			obj, err := dc.Resource(crdGVR).Get(ctx, c.plural+"."+kwokGroup, metav1.GetOptions{})
			if err == nil && crdEstablished(obj) {
				break
			}
			if time.Now().After(deadline) {
				return fmt.Errorf("CRD %s.%s not established after a minute (%v)", c.plural, kwokGroup, err)
			}
			select {
			case <-ctx.Done():
				return ctx.Err()
			case <-time.After(100 * time.Millisecond):
			}
		}
	}
	return nil
}

func crdEstablished(obj *unstructured.Unstructured) bool {
	conds, _, _ := unstructured.NestedSlice(obj.Object, "status", "conditions")
	for _, c := range conds {
		m, _ := c.(map[string]any)
		if m["type"] == "Established" && m["status"] == "True" {
			return true
		}
	}
	return false
}

const runnerManagedBy = "vaultctl-sandbox-runner"

// portForwardObject forwards each listed container port of pod ns/name to ip:port.
func portForwardObject(ns, name, ip string, ports []int32) *unstructured.Unstructured {
	var forwards []any
	for _, p := range ports {
		forwards = append(forwards, map[string]any{
			"ports":  []any{int64(p)},
			"target": map[string]any{"address": ip, "port": int64(p)},
		})
	}
	return kwokObject("PortForward", ns, name, map[string]any{"forwards": forwards})
}

// logsObject points `kubectl logs` (and --previous) of every container of ns/name at the files.
func logsObject(ns, name, current, previous string) *unstructured.Unstructured {
	return kwokObject("Logs", ns, name, map[string]any{"logs": []any{map[string]any{
		"logsFile": current, "previousLogsFile": previous, "follow": true,
	}}})
}

// containerLogs are one container's CRI log files.
type containerLogs struct {
	Container, Current, Previous string
}

// containerLogsObject points `kubectl logs -c CONTAINER` (and --previous) of each listed
// container of ns/name at its own files; kwok picks the entry whose containers name the one asked
// for.
func containerLogsObject(ns, name string, entries []containerLogs) *unstructured.Unstructured {
	logs := make([]any, 0, len(entries))
	for _, e := range entries {
		logs = append(logs, map[string]any{
			"containers": []any{e.Container}, "logsFile": e.Current, "previousLogsFile": e.Previous, "follow": true,
		})
	}
	return kwokObject("Logs", ns, name, map[string]any{"logs": logs})
}

func kwokObject(kind, ns, name string, spec map[string]any) *unstructured.Unstructured {
	return &unstructured.Unstructured{Object: map[string]any{
		"apiVersion": kwokGroup + "/v1alpha1",
		"kind":       kind,
		"metadata": map[string]any{
			"name": name, "namespace": ns,
			"labels": map[string]any{managedByLabel: runnerManagedBy},
		},
		"spec": spec,
	}}
}

// upsert creates obj or replaces the spec of the existing object.
func upsert(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, obj *unstructured.Unstructured) error {
	ri := dc.Resource(gvr).Namespace(obj.GetNamespace())
	cur, err := ri.Get(ctx, obj.GetName(), metav1.GetOptions{})
	switch {
	case apierrors.IsNotFound(err):
		_, err = ri.Create(ctx, obj, metav1.CreateOptions{})
		return err
	case err != nil:
		return err
	}
	obj.SetResourceVersion(cur.GetResourceVersion())
	_, err = ri.Update(ctx, obj, metav1.UpdateOptions{})
	return err
}

func deleteIgnoringMissing(ctx context.Context, dc dynamic.Interface, gvr schema.GroupVersionResource, ns, name string) error {
	err := dc.Resource(gvr).Namespace(ns).Delete(ctx, name, metav1.DeleteOptions{})
	if apierrors.IsNotFound(err) {
		return nil
	}
	return err
}
