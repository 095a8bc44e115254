package sandbox

import (
	"context"
	"fmt"
	"net/http"
	"path/filepath"
	"strings"
	"sync"
	"time"
)

// ComponentStatus is one line of `vaultctl-sandbox status`.
type ComponentStatus struct {
	Name    string `json:"name"`
	PID     int    `json:"pid"`
	Port    int    `json:"port,omitempty"`
	Running bool   `json:"running"`
	Healthy bool   `json:"healthy"`
	Detail  string `json:"detail,omitempty"`
	Log     string `json:"log"`
}

// Status checks every recorded component: is its process alive (same PID and start time) and
// does its health endpoint answer. Probes run in parallel, each bounded to a few seconds.
func (s *Sandbox) Status(ctx context.Context) []ComponentStatus {
	procs := s.processes()
	out := make([]ComponentStatus, len(procs))
	var wg sync.WaitGroup
	for i, p := range procs {
		out[i] = ComponentStatus{Name: p.Name, PID: p.PID, Port: p.Port, Log: p.Log}
		if !p.alive() {
			out[i].Detail = "not running"
			if p.PID == 0 {
				out[i].Detail = "stopped"
			}
			continue
		}
		out[i].Running = true
		wg.Add(1)
		go func() {
			defer wg.Done()
			pctx, cancel := context.WithTimeout(ctx, 5*time.Second)
			defer cancel()
			detail, err := s.probe(pctx, p)
			if err != nil {
				out[i].Detail = err.Error()
				return
			}
			out[i].Healthy, out[i].Detail = true, detail
		}()
	}
	wg.Wait()
	return out
}

// probe runs the health check of one component and returns a short description.
func (s *Sandbox) probe(ctx context.Context, p Process) (string, error) {
	pk := pki{dir: layout{dir: s.Dir}.pki()}
	local := func(port int, scheme, path string) string {
		return fmt.Sprintf("%s://127.0.0.1:%d%s", scheme, port, path)
	}
	switch {
	case p.Name == compEtcd:
		return "healthy", httpProbe(http.DefaultClient, local(p.Port, "http", "/health"), `"health":"true"`)(ctx)
	case p.Name == compAPIServer:
		c, err := tlsClient(pk.cert("ca"), pk.cert("admin"), pk.key("admin"))
		if err != nil {
			return "", err
		}
		return "ready", httpProbe(c, s.APIServerURL+"/readyz", "ok")(ctx)
	case p.Name == compKCM, p.Name == compScheduler:
		return "healthy", httpProbe(insecureLoopbackClient, local(p.Port, "https", "/healthz"), "ok")(ctx)
	case p.Name == compKwok:
		if err := httpProbe(http.DefaultClient, local(p.Port, "http", "/healthz"), "ok")(ctx); err != nil {
			return "", err
		}
		cs, err := kubeClient(s.Kubeconfig)
		if err != nil {
			return "", err
		}
		if err := nodesReady(ctx, cs); err != nil {
			return "", err
		}
		return fmt.Sprintf("%d fake nodes Ready", fakeNodeCount), nil
	case p.Name == compKMS:
		if err := kmsHealthy(ctx, s.KMSEndpoint, s.KMSRegion, s.KMSKeyAlias); err != nil {
			return "", err
		}
		return s.KMSKeyAlias + " enabled", nil
	case p.Name == compPostgres:
		bin := s.PostgresBinDir
		if bin == "" {
			bin = DefaultPGBinDir
		}
		return "accepting connections", postgresHealthy(ctx, bin, p.Port)
	case strings.HasPrefix(p.Name, "vault-") || strings.Contains(p.Name, "-vault-"): // also extra clusters' nodes
		c, err := tlsClient(s.CACertFile, "", "")
		if err != nil {
			return "", err
		}
		h, err := vaultHealth(ctx, c, fmt.Sprintf("https://127.0.0.1:%d", p.Port))
		if err != nil {
			return "", err
		}
		return fmt.Sprintf("%s, %s", h.String(), h.Version), nil
	}
	return "running", nil
}

// FormatStatus renders Status as an aligned table.
func FormatStatus(dir string, cs []ComponentStatus) string {
	var b strings.Builder
	fmt.Fprintf(&b, "sandbox %s\n", filepath.Clean(dir))
	fmt.Fprintf(&b, "%-24s %-8s %-6s %-9s %s\n", "COMPONENT", "PID", "PORT", "HEALTH", "DETAIL")
	for _, c := range cs {
		health := "healthy"
		switch {
		case !c.Running:
			health = "down"
		case !c.Healthy:
			health = "unhealthy"
		}
		pid := "-"
		if c.PID > 0 {
			pid = fmt.Sprint(c.PID)
		}
		port := "-"
		if c.Port > 0 {
			port = fmt.Sprint(c.Port)
		}
		fmt.Fprintf(&b, "%-24s %-8s %-6s %-9s %s\n", c.Name, pid, port, health, c.Detail)
	}
	return b.String()
}
