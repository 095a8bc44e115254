package sandbox

// The pure half of the in-cluster runner: how a Vault pod's spec becomes one `vault server`
// process on loopback, and how the process's state becomes the pod's status. Nothing here talks
// to the API server or starts anything, so all of it is unit-tested.

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"regexp"
	"slices"
	"sort"
	"strconv"
	"strings"
	"time"

	corev1 "k8s.io/api/core/v1"
	metav1 "k8s.io/apimachinery/pkg/apis/meta/v1"
)

// RunnerSelector selects the pods the runner turns into real Vault processes, and the pods
// kwok leaves alone (--disregard-status-with-label-selector): the server pods of a Vault
// StatefulSet, as vaultctl's chart and the official hashicorp/vault chart label them.
const RunnerSelector = "app.kubernetes.io/name=vault,component=server"

// ---- loopback pod IPs ----

// Every sandbox's runner takes one /24 of 127.0.0.0/8 (all of it is loopback on Linux) and
// gives each pod one address of it, so every pod can bind its own :8200 and :8201. Runners of
// concurrent sandboxes on one machine claim their block by listening on blockLockPort of the
// block's .254: the kernel arbitrates, and the claim dies with the runner.
const (
	blockLockPort  = 8199
	blockLockOctet = 254
	maxPodOctet    = 250
)

// ipBlock is 127.A.B.0/24.
type ipBlock struct{ a, b byte }

func (b ipBlock) String() string      { return fmt.Sprintf("127.%d.%d.0/24", b.a, b.b) }
func (b ipBlock) ip(last byte) string { return fmt.Sprintf("127.%d.%d.%d", b.a, b.b, last) }
func (b ipBlock) lockAddr() string {
	return net.JoinHostPort(b.ip(blockLockOctet), strconv.Itoa(blockLockPort))
}
func (b ipBlock) contains(ip string) bool {
	return strings.HasPrefix(ip, fmt.Sprintf("127.%d.%d.", b.a, b.b))
}

// parseIPBlock reads "127.A.B.0/24".
func parseIPBlock(s string) (ipBlock, error) {
	ip, n, err := net.ParseCIDR(strings.TrimSpace(s))
	if err != nil {
		return ipBlock{}, err
	}
	ones, _ := n.Mask.Size()
	ip4 := ip.To4()
	if ip4 == nil || ip4[0] != 127 || ones != 24 {
		return ipBlock{}, fmt.Errorf("%s is not a /24 in 127.0.0.0/8", s)
	}
	return ipBlock{ip4[1], ip4[2]}, nil
}

// randomIPBlock picks a block away from 127.0.0.0/16, where loopback services usually live.
func randomIPBlock(r *rand.Rand) ipBlock {
	return ipBlock{byte(100 + r.IntN(154)), byte(r.IntN(256))}
}

// ipAllocator hands out the addresses of one block, stable per pod key (namespace/name): a pod
// recreated by its StatefulSet keeps its address, as its DNS name would in a cluster.
type ipAllocator struct {
	block ipBlock
	byKey map[string]byte
}

func newIPAllocator(b ipBlock, known map[string]string) *ipAllocator {
	a := &ipAllocator{block: b, byKey: map[string]byte{}}
	for k, ip := range known {
		if !b.contains(ip) {
			continue
		}
		parts := strings.Split(ip, ".")
		n, err := strconv.Atoi(parts[3])
		if err == nil && n >= 1 && n <= maxPodOctet {
			a.byKey[k] = byte(n)
		}
	}
	return a
}

// get returns key's address, allocating the lowest free one the first time.
func (a *ipAllocator) get(key string) (string, error) {
	if n, ok := a.byKey[key]; ok {
		return a.block.ip(n), nil
	}
	used := map[byte]bool{}
	for _, n := range a.byKey {
		used[n] = true
	}
	for n := 1; n <= maxPodOctet; n++ {
		if !used[byte(n)] {
			a.byKey[key] = byte(n)
			return a.block.ip(byte(n)), nil
		}
	}
	return "", fmt.Errorf("no free pod address left in %s (%d pods)", a.block, len(a.byKey))
}

// snapshot returns key -> address for the state file.
func (a *ipAllocator) snapshot() map[string]string {
	m := make(map[string]string, len(a.byKey))
	for k, n := range a.byKey {
		m[k] = a.block.ip(n)
	}
	return m
}

// ---- listener rewrite ----

var (
	listenerOpenRE = regexp.MustCompile(`(?m)^[ \t]*listener[ \t]+"?tcp"?[ \t]*\{`)
	listenerAddrRE = regexp.MustCompile(`^([ \t]*)(address|cluster_address)([ \t]*=[ \t]*)"([^"]*)"`)
)

// wildcardHosts are listener hosts that mean "this pod" in a container: every interface, or
// the pod's own loopback. On the shared host loopback each becomes the pod's address.
var wildcardHosts = []string{"", "0.0.0.0", "::", "127.0.0.1", "localhost"}

// rewriteListeners maps the address and cluster_address of every tcp listener block that
// binds a wildcard (or pod-local loopback) address to ip, keeping the port. Nothing else in the
// configuration changes: retry_join, api_addr, seal and storage stay as the chart rendered
// them. It returns the new text and one line per change.
func rewriteListeners(hcl, ip string) (string, []string) {
	var changes []string
	var out strings.Builder
	rest := hcl
	for {
		loc := listenerOpenRE.FindStringIndex(rest)
		if loc == nil {
			out.WriteString(rest)
			break
		}
		end := blockEnd(rest, loc[1])
		out.WriteString(rest[:loc[1]])
		body := rest[loc[1]:end]
		lines := strings.SplitAfter(body, "\n")
		depth := 0
		for i, line := range lines {
			if depth == 0 {
				if m := listenerAddrRE.FindStringSubmatch(line); m != nil {
					host, port, err := net.SplitHostPort(m[4])
					if err == nil && slices.Contains(wildcardHosts, host) {
						repl := net.JoinHostPort(ip, port)
						lines[i] = m[1] + m[2] + m[3] + strconv.Quote(repl) + line[len(m[0]):]
						changes = append(changes, fmt.Sprintf("listener %s %s -> %s", m[2], m[4], repl))
					}
				}
			}
			depth += braceDelta(line)
		}
		out.WriteString(strings.Join(lines, ""))
		rest = rest[end:]
	}
	return out.String(), changes
}

// blockEnd returns the index just past the '}' closing the block whose '{' ends at open,
// skipping strings and comments; len(s) when the block is not closed.
func blockEnd(s string, open int) int {
	depth := 1
	for i := open; i < len(s); i++ {
		switch c := s[i]; {
		case c == '"':
			for i++; i < len(s) && s[i] != '"'; i++ {
				if s[i] == '\\' {
					i++
				}
			}
		case c == '#' || (c == '/' && i+1 < len(s) && s[i+1] == '/'):
			for i < len(s) && s[i] != '\n' {
				i++
			}
		case c == '/' && i+1 < len(s) && s[i+1] == '*':
			if j := strings.Index(s[i+2:], "*/"); j >= 0 {
				i += j + 3
			} else {
				return len(s)
			}
		case c == '{':
			depth++
		case c == '}':
			depth--
			if depth == 0 {
				return i
			}
		}
	}
	return len(s)
}

// braceDelta counts the block nesting change of one line outside strings and comments.
func braceDelta(line string) int {
	d := 0
	for i := 0; i < len(line); i++ {
		switch c := line[i]; {
		case c == '"':
			for i++; i < len(line) && line[i] != '"'; i++ {
				if line[i] == '\\' {
					i++
				}
			}
		case c == '#' || (c == '/' && i+1 < len(line) && line[i+1] == '/'):
			return d
		case c == '{':
			d++
		case c == '}':
			d--
		}
	}
	return d
}

// ---- /etc/hosts ----

// hostEntry is one pod as the pod DNS of a cluster would publish it.
type hostEntry struct {
	Name, Namespace, Hostname, Subdomain, IP string
}

const clusterDomain = "cluster.local"

// names lists the names a pod is reachable by: through its headless Service (with and without
// the search-path suffixes a pod's resolv.conf would add), and its bare hostname.
func (h hostEntry) names(self bool) []string {
	host := h.Hostname
	if host == "" {
		host = h.Name
	}
	var n []string
	if h.Subdomain != "" {
		fq := host + "." + h.Subdomain
		n = append(n, fq+"."+h.Namespace+".svc."+clusterDomain, fq+"."+h.Namespace+".svc", fq+"."+h.Namespace, fq)
	}
	if self {
		n = append(n, host)
	}
	return n
}

// hostsFile renders the /etc/hosts of pod self: the kubelet's own lines, plus every pod of the
// namespace that a headless Service publishes (hostname and subdomain set), because there is
// no cluster DNS on the host and retry_join, api_addr and cluster_addr name peers that way.
// Peers are listed whether or not they are ready, as publishNotReadyAddresses would.
func hostsFile(self hostEntry, peers []hostEntry) string {
	var b strings.Builder
	b.WriteString("# Kubernetes-managed hosts file (vaultctl-sandbox runner): pod DNS on loopback.\n")
	b.WriteString("127.0.0.1\tlocalhost\n::1\tlocalhost ip6-localhost ip6-loopback\n")
	fmt.Fprintf(&b, "%s\t%s\n", self.IP, strings.Join(self.names(true), " "))
	sorted := slices.Clone(peers)
	sort.Slice(sorted, func(i, j int) bool { return sorted[i].Name < sorted[j].Name })
	for _, p := range sorted {
		if p.Name == self.Name || p.IP == "" || p.Subdomain == "" {
			continue
		}
		fmt.Fprintf(&b, "%s\t%s\n", p.IP, strings.Join(p.names(false), " "))
	}
	return b.String()
}

// ---- environment and command ----

// envMap indexes KEY=VALUE pairs.
func envMap(env []string) map[string]string {
	m := make(map[string]string, len(env))
	for _, kv := range env {
		k, v, _ := strings.Cut(kv, "=")
		m[k] = v
	}
	return m
}

// errNotVault says a container asks for a program the runner cannot run.
var errNotVault = errors.New("the sandbox runner runs only the vault binary")

// containerArgv resolves the container's command the way the image would: the Vault image's
// `vault` (on PATH, or an absolute path ending in /vault) is the sandbox's own Vault binary. An
// empty command runs vault with the container's args, as the image's entrypoint does.
func containerArgv(c *corev1.Container, env map[string]string, vaultBin string) ([]string, error) {
	var argv []string
	for _, a := range c.Command {
		argv = append(argv, expandVars(a, env))
	}
	if len(argv) == 0 {
		argv = []string{"vault"}
	}
	if argv[0] != "vault" && !strings.HasSuffix(argv[0], "/vault") {
		return nil, fmt.Errorf("%w, not %q", errNotVault, argv[0])
	}
	argv[0] = vaultBin
	for _, a := range c.Args {
		argv = append(argv, expandVars(a, env))
	}
	return argv, nil
}

// ---- status ----

// containerState is what the runner knows about a pod's one container.
type containerState struct {
	Running      bool
	StartedAt    time.Time // of the current (or last) process
	Ready        bool
	ReadySince   time.Time // last change of Ready
	RestartCount int32
	// Last is how the previous process ended.
	Last *corev1.ContainerStateTerminated
	// Waiting is set while no process runs: CrashLoopBackOff, ContainerCreating, an error.
	WaitingReason, WaitingMessage string
	ContainerID                   string
}

// pendingPodStatus is the part of a pod's status that does not depend on its containers: its
// addresses, start time and QoS class (kept from the API server's), phase Pending.
func pendingPodStatus(pod *corev1.Pod, podIP, hostIP string, podStart time.Time) corev1.PodStatus {
	st := corev1.PodStatus{
		Phase:     corev1.PodPending,
		HostIP:    hostIP,
		HostIPs:   []corev1.HostIP{{IP: hostIP}},
		PodIP:     podIP,
		PodIPs:    []corev1.PodIP{{IP: podIP}},
		StartTime: ptrTo(metav1.NewTime(podStart.UTC().Truncate(time.Second))),
		QOSClass:  corev1.PodQOSBurstable,
	}
	if pod.Status.QOSClass != "" {
		st.QOSClass = pod.Status.QOSClass
	}
	return st
}

// buildPodStatus renders the pod status a kubelet would report for a single-container pod whose
// container is in cs. The scheduler's PodScheduled condition is kept.
func buildPodStatus(pod *corev1.Pod, c *corev1.Container, cs containerState, podIP, hostIP string, podStart time.Time) corev1.PodStatus {
	t := func(x time.Time) metav1.Time { return metav1.NewTime(x.UTC().Truncate(time.Second)) }
	st := pendingPodStatus(pod, podIP, hostIP, podStart)
	// Running once the container has started, and while a restart is pending (restartPolicy
	// Always keeps the pod Running through CrashLoopBackOff).
	if cs.Running || cs.RestartCount > 0 || cs.Last != nil {
		st.Phase = corev1.PodRunning
	}
	status := corev1.ContainerStatus{
		Name:         c.Name,
		Image:        c.Image,
		ImageID:      c.Image,
		ContainerID:  cs.ContainerID,
		Ready:        cs.Running && cs.Ready,
		RestartCount: cs.RestartCount,
		Started:      ptrTo(cs.Running),
		LastTerminationState: corev1.ContainerState{
			Terminated: cs.Last,
		},
	}
	switch {
	case cs.Running:
		status.State.Running = &corev1.ContainerStateRunning{StartedAt: t(cs.StartedAt)}
	default:
		reason := cs.WaitingReason
		if reason == "" {
			reason = "ContainerCreating"
		}
		status.State.Waiting = &corev1.ContainerStateWaiting{Reason: reason, Message: cs.WaitingMessage}
	}
	st.ContainerStatuses = []corev1.ContainerStatus{status}

	cond := func(typ corev1.PodConditionType, ok bool, since time.Time) corev1.PodCondition {
		s := corev1.ConditionFalse
		if ok {
			s = corev1.ConditionTrue
		}
		return corev1.PodCondition{Type: typ, Status: s, LastTransitionTime: t(since)}
	}
	scheduled := cond(corev1.PodScheduled, true, podStart)
	for _, pc := range pod.Status.Conditions {
		if pc.Type == corev1.PodScheduled {
			scheduled = pc
		}
	}
	ready := status.Ready
	since := cs.ReadySince
	if since.IsZero() {
		since = podStart
	}
	st.Conditions = []corev1.PodCondition{
		cond(corev1.PodReadyToStartContainers, true, podStart),
		cond(corev1.PodInitialized, true, podStart),
		cond(corev1.ContainersReady, ready, since),
		cond(corev1.PodReady, ready, since),
		scheduled,
	}
	if !ready {
		for i := 2; i <= 3; i++ {
			st.Conditions[i].Reason = "ContainersNotReady"
			st.Conditions[i].Message = "containers with unready status: [" + c.Name + "]"
		}
	}
	return st
}

func ptrTo[T any](v T) *T { return &v }

// backoff is the kubelet's crash-loop delay, shortened for a sandbox: 1s doubling to 30s.
func backoff(restarts int32) time.Duration {
	d := time.Second
	for i := int32(1); i < restarts && d < 30*time.Second; i++ {
		d *= 2
	}
	return min(d, 30*time.Second)
}

// criLine formats one log line the way container runtimes write pod logs (what kwok's Logs
// resource reads for `kubectl logs`): RFC 3339 nanosecond time, stream, full-line tag.
func criLine(at time.Time, stream, line string) string {
	return at.UTC().Format(time.RFC3339Nano) + " " + stream + " F " + line + "\n"
}

// podKey is namespace/name; podDirName is its directory under DIR/pods.
func podKey(ns, name string) string     { return ns + "/" + name }
func podDirName(ns, name string) string { return ns + "_" + name }
