package waves

import (
	"context"
	"crypto/tls"
	"crypto/x509"
	"errors"
	"fmt"
	"net"
	"strconv"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
	"k8s.io/apimachinery/pkg/util/intstr"

	"github.com/vaultctl/vaultctl/internal/kube"
)

// DialFunc opens a connection to port of a pod, e.g. through a port-forward.
type DialFunc func(ctx context.Context, namespace, pod string, port int) (net.Conn, error)

// PortForwardDialer dials through the API server's port-forward, as kubectl does.
func (o *Observer) portForwardDial(ctx context.Context, namespace, pod string, port int) (net.Conn, error) {
	if o.KubeREST == nil {
		return nil, fmt.Errorf("no REST config to port-forward with")
	}
	local, err := kube.PortForward(ctx, o.KubeREST, namespace, pod, port)
	if err != nil {
		return nil, err
	}
	var d net.Dialer
	return d.DialContext(ctx, "tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(local)))
}

// servingCertProblem checks what the API server checks when it calls the webhook: the
// injector's serving certificate, from one of its Ready pods, verifies against the caBundle
// for the Service's DNS name. reached is false when no pod could be reached (the gate then
// rests on the caBundle alone, and says so).
func (o *Observer) servingCertProblem(ctx context.Context, svc *corev1.Service, caBundle []byte) (problem string, reached bool) {
	pool := x509.NewCertPool()
	if !pool.AppendCertsFromPEM(caBundle) {
		return "the caBundle holds no certificate", true
	}
	pods, err := o.Kube.CoreV1().Pods(svc.Namespace).List(ctx, metav1.ListOptions{LabelSelector: metav1.FormatLabelSelector(&metav1.LabelSelector{MatchLabels: svc.Spec.Selector})})
	if err != nil || len(svc.Spec.Selector) == 0 {
		return "", false
	}
	port := 8080
	if len(svc.Spec.Ports) > 0 && svc.Spec.Ports[0].TargetPort.Type == intstr.Int && svc.Spec.Ports[0].TargetPort.IntVal > 0 {
		port = int(svc.Spec.Ports[0].TargetPort.IntVal)
	}
	dial := o.DialInjector
	if dial == nil {
		dial = o.portForwardDial
	}
	for _, p := range pods.Items {
		if p.Status.Phase != corev1.PodRunning || p.DeletionTimestamp != nil {
			continue
		}
		dctx, cancel := context.WithTimeout(ctx, 5*time.Second)
		conn, err := dial(dctx, p.Namespace, p.Name, port)
		if err != nil {
			cancel()
			continue
		}
		tc := tls.Client(conn, &tls.Config{RootCAs: pool, ServerName: svc.Name + "." + svc.Namespace + ".svc", MinVersion: tls.VersionTLS12})
		err = tc.HandshakeContext(dctx)
		tc.Close()
		cancel()
		var verr *tls.CertificateVerificationError
		switch {
		case errors.As(err, &verr):
			return fmt.Sprintf("pod %s's serving certificate does not verify against the caBundle: %v", p.Name, verr.Err), true
		case err != nil:
			// The forward or the handshake broke off (a pod that does not serve yet, a
			// forward the node refuses): nothing learnt about the certificate.
			continue
		}
		return "", true
	}
	return "", false
}
