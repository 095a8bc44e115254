package e2e

import (
	"fmt"
	"os"
	"sort"
	"strconv"
	"testing"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"

	"github.com/vaultctl/vaultctl/internal/sandbox"
)

// BenchmarkAgentPods creates BENCH_AGENT_PODS (default 20) pods that ask for injection, all at
// once, and reports how many per second reach Running and Ready (the agent's init container
// logged in, rendered and exited; the sidecar started), and the resident memory of each pod's
// sidecar agent (its shell and vault agent). bench/agent-pods.sh runs it.
func BenchmarkAgentPods(b *testing.B) {
	n := 20
	if s := os.Getenv("BENCH_AGENT_PODS"); s != "" {
		v, err := strconv.Atoi(s)
		if err != nil || v < 1 {
			b.Fatalf("BENCH_AGENT_PODS=%q: want a whole number of at least 1", s)
		}
		n = v
	}
	for i := 0; i < b.N; i++ {
		benchAgentPods(b, i, n)
	}
}

func benchAgentPods(b *testing.B, round, n int) {
	a := newAgentCase(b, fmt.Sprintf("bench-%d", round))
	a.kv(agentKV, "bench/config", map[string]any{"password": "bench"})
	a.policy("sbagent-bench", `path "`+agentKV+`/data/bench/config" { capabilities = ["read"] }`)
	a.role("sbagent-bench", "app", "sbagent-bench")
	b.ResetTimer()
	start := time.Now()
	for i := range n {
		a.pod(fmt.Sprintf("bench-%d", i), map[string]string{
			"vault.hashicorp.com/role":                   "sbagent-bench",
			"vault.hashicorp.com/agent-inject-secret-pw": agentKV + "/data/bench/config",
		})
	}
	ready := map[string]time.Duration{}
	deadline := time.Now().Add(10 * time.Minute)
	for len(ready) < n {
		if time.Now().After(deadline) {
			b.Fatalf("%d of %d pods Running and Ready after 10 minutes", len(ready), n)
		}
		list, err := a.cs.CoreV1().Pods(a.ns).List(a.ctx, metav1.ListOptions{})
		if err != nil {
			b.Fatal(err)
		}
		for _, p := range list.Items {
			if _, ok := ready[p.Name]; !ok && p.Status.Phase == corev1.PodRunning && podReady(&p) {
				ready[p.Name] = time.Since(start)
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
	elapsed := time.Since(start)
	b.StopTimer()
	var rss, private []float64
	for name := range ready {
		if r, own := sandbox.ContainerMemory(sb.Dir, a.ns, name, "vault-agent"); r > 0 {
			rss = append(rss, float64(r)/(1<<20))
			private = append(private, float64(own)/(1<<20))
		}
	}
	if len(rss) == 0 {
		b.Fatal("no sidecar agent process found")
	}
	sort.Float64s(rss)
	sort.Float64s(private)
	b.ReportMetric(float64(n)/elapsed.Seconds(), "pods/s")
	b.ReportMetric(rss[len(rss)/2], "MiB-RSS/agent")
	b.ReportMetric(private[len(private)/2], "MiB-private/agent")
	b.Logf("%d pods with agents Running and Ready in %s (%.1f pods/s); sidecar agent (median) RSS %.1f MiB, of it private %.1f MiB",
		n, elapsed.Round(time.Millisecond), float64(n)/elapsed.Seconds(), rss[len(rss)/2], private[len(private)/2])
}
