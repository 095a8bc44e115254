package action

import (
	"context"
	"errors"
	"fmt"
	"io"
	"os"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/client-go/kubernetes"

	"github.com/vaultctl/vaultctl/auditlog"
)

// VaultPodSelector selects the Vault server pods of vaultctl's chart.
const VaultPodSelector = "app.kubernetes.io/name=vault,component=server"

// AuditInputs opens the audit log inputs named on the command line: files (gzip or not) and
// "-" for stdin. The caller closes them with the returned function.
func AuditInputs(names []string, stdin io.Reader) ([]auditlog.Input, func(), error) {
	var (
		inputs []auditlog.Input
		files  []*os.File
	)
	closeAll := func() {
		for _, f := range files {
			f.Close()
		}
	}
	for _, n := range names {
		if n == "-" {
			inputs = append(inputs, auditlog.Input{Name: "-", R: stdin})
			continue
		}
		f, err := os.Open(n)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("opening audit log: %w", err)
		}
		files = append(files, f)
		inputs = append(inputs, auditlog.Input{Name: n, R: f})
	}
	return inputs, closeAll, nil
}

// AuditFromPods streams the logs of the Vault server pods in ns through the Kubernetes API
// (pods/log, as kubectl logs does), one input per pod. The audit lines are there when an audit
// device writes to stdout (type file, file_path stdout); the server's own messages in between
// are not JSON audit entries and are counted, not analysed. A file device on the audit volume
// cannot be read this way: that needs exec, or the volume itself.
func AuditFromPods(ctx context.Context, k kubernetes.Interface, ns, container string) ([]auditlog.Input, func(), error) {
	pods, err := k.CoreV1().Pods(ns).List(ctx, metav1.ListOptions{LabelSelector: VaultPodSelector})
	if err != nil {
		return nil, nil, fmt.Errorf("listing Vault pods in %s: %w", ns, err)
	}
	if len(pods.Items) == 0 {
		return nil, nil, fmt.Errorf("no Vault server pods (%s) in namespace %s: pass -n/--namespace with the Vault namespace", VaultPodSelector, ns)
	}
	var (
		inputs  []auditlog.Input
		streams []io.Closer
	)
	closeAll := func() {
		for _, s := range streams {
			s.Close()
		}
	}
	for _, p := range pods.Items {
		rc, err := k.CoreV1().Pods(ns).GetLogs(p.Name, &corev1.PodLogOptions{Container: container}).Stream(ctx)
		if err != nil {
			closeAll()
			return nil, nil, fmt.Errorf("streaming the log of pod %s/%s: %w", ns, p.Name, err)
		}
		streams = append(streams, rc)
		inputs = append(inputs, auditlog.Input{Name: "pod/" + p.Name, R: rc})
	}
	if len(inputs) == 0 {
		return nil, nil, errors.New("no pod log to read")
	}
	return inputs, closeAll, nil
}
