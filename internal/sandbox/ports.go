package sandbox

import (
	"errors"
	"fmt"
	"math/rand/v2"
	"net"
	"os"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// Ports are chosen below the kernel's ephemeral range: a port the kernel hands out for bind(0)
// can be taken again by any outgoing connection between our check and the component's own
// bind, while a port outside that range can only collide with another explicit listener.
const (
	portFloor        = 20000 // below this live well-known services; stay clear
	defaultEphemeral = 32768 // Linux default start of net.ipv4.ip_local_port_range
)

// portRange returns [lo, hi) to pick sandbox ports from, given the start of the ephemeral range.
func portRange(ephemeralStart int) (lo, hi int) {
	if ephemeralStart-portFloor < 1000 {
		// A tuned machine with a huge ephemeral range: fall back to the space above it.
		return 61000, 65000
	}
	return portFloor, ephemeralStart
}

// ephemeralStart reads the first port of the kernel's ephemeral range.
func ephemeralStart() int {
	b, err := os.ReadFile("/proc/sys/net/ipv4/ip_local_port_range")
	if err != nil {
		return defaultEphemeral
	}
	return parseEphemeralStart(string(b))
}

func parseEphemeralStart(s string) int {
	f := strings.Fields(s)
	if len(f) < 1 {
		return defaultEphemeral
	}
	n, err := strconv.Atoi(f[0])
	if err != nil || n <= 0 || n > 65535 {
		return defaultEphemeral
	}
	return n
}

// portSet holds a listener on each reserved port until the component that owns the port is
// about to start, so neither a concurrent sandbox nor another of our components can get it.
type portSet struct {
	mu    sync.Mutex
	ports map[string]int
	held  map[string]net.Listener
	// fixed names the ports recorded by a stopped sandbox: they cannot move (Raft and etcd keep
	// their peers' addresses in their data).
	fixed  map[string]bool
	lo, hi int
	// lost holds ports found taken after they were chosen: never chosen again by this set.
	lost map[int]bool
}

// reservePorts reserves one loopback port per name. A name found in prefer gets that exact port
// (a restarted sandbox must keep its ports: Raft remembers its peers' addresses); the error
// then names the busy port.
func reservePorts(names []string, prefer map[string]int) (*portSet, error) {
	lo, hi := portRange(ephemeralStart())
	ps := &portSet{ports: map[string]int{}, held: map[string]net.Listener{}, fixed: map[string]bool{}, lo: lo, hi: hi, lost: map[int]bool{}}
	used := map[int]bool{}
	for _, name := range names {
		if p, ok := prefer[name]; ok && p > 0 {
			l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
			if err != nil {
				ps.releaseAll()
				return nil, fmt.Errorf("port %d of %s (recorded in the state file) is in use: %w", p, name, err)
			}
			ps.ports[name], ps.held[name], used[p], ps.fixed[name] = p, l, true, true
			continue
		}
		l, p, err := listenRandom(lo, hi, used)
		if err != nil {
			ps.releaseAll()
			return nil, fmt.Errorf("no free loopback port for %s: %w", name, err)
		}
		ps.ports[name], ps.held[name], used[p] = p, l, true
	}
	return ps, nil
}

func listenRandom(lo, hi int, used map[int]bool) (net.Listener, int, error) {
	var lastErr error = errors.New("range exhausted")
	for range 200 {
		p := lo + rand.IntN(hi-lo)
		if used[p] {
			continue
		}
		l, err := net.Listen("tcp", net.JoinHostPort("127.0.0.1", strconv.Itoa(p)))
		if err == nil {
			return l, p, nil
		}
		lastErr = err
	}
	return nil, 0, lastErr
}

// move gives each of names a fresh port, held until the owner starts again, after the owner
// found its port taken by another program. Recorded (fixed) ports cannot move: nothing moves then.
func (ps *portSet) move(names ...string) (map[string]int, error) {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for _, n := range names {
		if ps.fixed[n] {
			return nil, fmt.Errorf("port %d of %s is recorded in the state file and cannot move (run `vaultctl-sandbox down --purge` to start over on new ports)", ps.ports[n], n)
		}
	}
	used := map[int]bool{}
	for p := range ps.lost {
		used[p] = true
	}
	for _, p := range ps.ports {
		used[p] = true
	}
	moved := map[string]int{}
	for _, n := range names {
		old, ok := ps.ports[n]
		if !ok {
			continue
		}
		if l, ok := ps.held[n]; ok {
			l.Close()
			delete(ps.held, n)
		}
		l, p, err := listenRandom(ps.lo, ps.hi, used)
		if err != nil {
			return nil, fmt.Errorf("no free loopback port for %s: %w", n, err)
		}
		ps.lost[old] = true
		ps.ports[n], ps.held[n], used[p], moved[n] = p, l, true, p
	}
	return moved, nil
}

// port returns the reserved port of name (0 if none).
func (ps *portSet) port(name string) int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	return ps.ports[name]
}

// release closes the placeholder listeners right before their owner binds the ports, and waits
// until each port is bindable. Closing is not enough: a process forked by this one at that
// moment (another component starting) holds a copy of every descriptor until its exec, so the
// socket may outlive Close long enough for the owner's bind to fail with EADDRINUSE.
func (ps *portSet) release(names ...string) {
	ps.mu.Lock()
	var ports []int
	for _, n := range names {
		if l, ok := ps.held[n]; ok {
			l.Close()
			delete(ps.held, n)
			ports = append(ports, ps.ports[n])
		}
	}
	ps.mu.Unlock()
	for _, p := range ports {
		// A port still busy after the wait is another program's: the owner's start fails and
		// retryOnTakenPort moves it.
		_ = waitBindable(p, 2*time.Second)
	}
}

// waitBindable polls until 127.0.0.1:port can be bound. Each probe listener lives under
// syscall.ForkLock held for reading, so no fork copies it: once a probe binds and closes, no
// descriptor of the port is left anywhere in this process or its children.
func waitBindable(port int, timeout time.Duration) error {
	addr := net.JoinHostPort("127.0.0.1", strconv.Itoa(port))
	deadline := time.Now().Add(timeout)
	for {
		syscall.ForkLock.RLock()
		l, err := net.Listen("tcp", addr)
		if err == nil {
			l.Close()
		}
		syscall.ForkLock.RUnlock()
		if err == nil || time.Now().After(deadline) {
			return err
		}
		time.Sleep(2 * time.Millisecond)
	}
}

func (ps *portSet) releaseAll() {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	for n, l := range ps.held {
		l.Close()
		delete(ps.held, n)
	}
}

// snapshot copies the name→port map for the state file.
func (ps *portSet) snapshot() map[string]int {
	ps.mu.Lock()
	defer ps.mu.Unlock()
	m := make(map[string]int, len(ps.ports))
	for k, v := range ps.ports {
		m[k] = v
	}
	return m
}
