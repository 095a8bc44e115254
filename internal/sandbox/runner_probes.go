package sandbox

// Readiness and liveness probes against a pod's process, with the kubelet's timing.

import (
	"context"
	"crypto/tls"
	"fmt"
	"io"
	"net"
	"net/http"
	"strconv"
	"strings"
	"syscall"
	"time"

	corev1 "k8s.io/api/core/v1"
	"k8s.io/apimachinery/pkg/util/intstr"
)

// probeLoop runs a readiness (or liveness) probe against the running process with the probe's
// timing, as the kubelet does. A liveness failure makes the process restart.
func (r *runner) probeLoop(ctx context.Context, p *podProc, cp *ctrProc, c *corev1.Container, pr *corev1.Probe, readiness bool) {
	period := time.Duration(max(pr.PeriodSeconds, 1)) * time.Second
	if pr.PeriodSeconds == 0 {
		period = 10 * time.Second
	}
	timeout := time.Duration(max(pr.TimeoutSeconds, 1)) * time.Second
	success, failure := max(pr.SuccessThreshold, 1), pr.FailureThreshold
	if failure == 0 {
		failure = 3
	}
	delay := time.Duration(pr.InitialDelaySeconds) * time.Second
	var okRun, failRun int32
	for {
		select {
		case <-ctx.Done():
			return
		case <-time.After(delay):
		}
		delay = period
		err := r.probeOnce(ctx, p, c, pr, timeout)
		if ctx.Err() != nil {
			return
		}
		if err == nil {
			okRun, failRun = okRun+1, 0
		} else {
			okRun, failRun = 0, failRun+1
		}
		p.mu.Lock()
		switch {
		case readiness && !cp.cs.Ready && okRun >= success:
			cp.cs.Ready, cp.cs.ReadySince = true, time.Now()
			p.mu.Unlock()
			r.queue.Add(p.key)
			continue
		case readiness && cp.cs.Ready && failRun >= failure:
			cp.cs.Ready, cp.cs.ReadySince = false, time.Now()
			p.mu.Unlock()
			r.log.Printf("%s: readiness probe of %s failed %d times: %v", p.key, cp.name, failRun, err)
			r.queue.Add(p.key)
			continue
		case !readiness && failRun >= failure:
			pid := cp.pid
			p.mu.Unlock()
			r.log.Printf("%s: liveness probe of %s failed %d times (%v): restarting it (pid %d)", p.key, cp.name, failRun, err, pid)
			if pid != 0 {
				_ = syscall.Kill(-pid, syscall.SIGTERM)
			}
			return
		}
		p.mu.Unlock()
	}
}

var probeTransport = &http.Transport{
	// The kubelet does not verify probe certificates either.
	TLSClientConfig:   &tls.Config{InsecureSkipVerify: true}, //nolint:gosec // kubelet probe semantics, loopback only
	DisableKeepAlives: true,
}

func (r *runner) probeOnce(ctx context.Context, p *podProc, c *corev1.Container, pr *corev1.Probe, timeout time.Duration) error {
	ctx, cancel := context.WithTimeout(ctx, timeout)
	defer cancel()
	port := func(ps intstr.IntOrString) (string, error) {
		if ps.Type == intstr.Int {
			return strconv.Itoa(ps.IntValue()), nil
		}
		for _, cp := range c.Ports {
			if cp.Name == ps.StrVal {
				return strconv.Itoa(int(cp.ContainerPort)), nil
			}
		}
		return "", fmt.Errorf("no container port named %q", ps.StrVal)
	}
	switch {
	case pr.HTTPGet != nil:
		g := pr.HTTPGet
		pt, err := port(g.Port)
		if err != nil {
			return err
		}
		host := g.Host
		if host == "" {
			host = p.ip
		}
		scheme := strings.ToLower(string(g.Scheme))
		if scheme == "" {
			scheme = "http"
		}
		path := g.Path
		if !strings.HasPrefix(path, "/") {
			path = "/" + path
		}
		req, err := http.NewRequestWithContext(ctx, http.MethodGet, scheme+"://"+net.JoinHostPort(host, pt)+path, nil)
		if err != nil {
			return err
		}
		for _, h := range g.HTTPHeaders {
			req.Header.Add(h.Name, h.Value)
		}
		resp, err := (&http.Client{Transport: probeTransport}).Do(req)
		if err != nil {
			return err
		}
		_, _ = io.Copy(io.Discard, io.LimitReader(resp.Body, 10<<10))
		resp.Body.Close()
		if resp.StatusCode < 200 || resp.StatusCode >= 400 {
			return fmt.Errorf("HTTP %d", resp.StatusCode)
		}
		return nil
	case pr.TCPSocket != nil:
		pt, err := port(pr.TCPSocket.Port)
		if err != nil {
			return err
		}
		var d net.Dialer
		conn, err := d.DialContext(ctx, "tcp", net.JoinHostPort(p.ip, pt))
		if err != nil {
			return err
		}
		return conn.Close()
	}
	// exec and gRPC probes would need to run inside the pod: counted as passing.
	return nil
}
