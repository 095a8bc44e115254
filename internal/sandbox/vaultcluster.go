package sandbox

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"regexp"
	"syscall"
	"time"
)

// VaultCluster is an additional 3-node Vault Raft cluster on the sandbox's KMS: fresh and
// uninitialized, so each end-to-end scenario can install from empty without touching another's
// Vault. Its processes are recorded in the sandbox state, so `down` stops them too.
type VaultCluster struct {
	Name  string
	Addrs []string

	s     *Sandbox
	dir   string
	ports map[string]int
}

var clusterNameRE = regexp.MustCompile(`^[a-z0-9-]{1,20}$`)

// StartVaultCluster starts cluster name (lowercase letters, digits, '-') and waits for every
// node's API to answer.
func (s *Sandbox) StartVaultCluster(ctx context.Context, name string) (*VaultCluster, error) {
	if !clusterNameRE.MatchString(name) {
		return nil, fmt.Errorf("sandbox: bad cluster name %q", name)
	}
	c := &VaultCluster{Name: name, s: s, dir: filepath.Join(s.Dir, "vault-clusters", name), ports: map[string]int{}}
	if _, err := os.Stat(c.dir); err == nil {
		return nil, fmt.Errorf("sandbox: Vault cluster %q already exists in %s", name, c.dir)
	}
	var names []string
	for i := range vaultReplicas {
		names = append(names, c.node(i), c.node(i)+"-cluster")
	}
	ps, err := reservePorts(names, nil)
	if err != nil {
		return nil, err
	}
	defer ps.releaseAll()
	for _, n := range names {
		c.ports[n] = ps.port(n)
	}
	for i := range vaultReplicas {
		c.Addrs = append(c.Addrs, fmt.Sprintf("https://127.0.0.1:%d", c.ports[c.node(i)]))
	}
	// As in Up: a node that finds its port taken moves, and all nodes start again (each names
	// the others in retry_join).
	var nodes []*started
	err = retryOnTakenPort(ps, func(string, ...any) {}, vaultNodePorts, func() ([]*started, error) {
		if err := stopStarted(nodes); err != nil {
			return nil, err
		}
		nodes = nodes[:0]
		for i := range vaultReplicas {
			ps.release(c.node(i), c.node(i)+"-cluster")
			st, err := c.startNode(i)
			if err != nil {
				return nodes, err
			}
			nodes = append(nodes, st)
		}
		return nodes, waitAll(nodes, func(i int, st *started) error { return c.waitNode(ctx, i, st) })
	}, func(moved map[string]int) error {
		for n, p := range moved {
			c.ports[n] = p
		}
		for i := range vaultReplicas {
			c.Addrs[i] = fmt.Sprintf("https://127.0.0.1:%d", c.ports[c.node(i)])
		}
		return nil
	})
	if err != nil {
		c.Stop()
		return nil, err
	}
	return c, nil
}

func (c *VaultCluster) node(i int) string { return fmt.Sprintf("%s-vault-%d", c.Name, i) }

func (c *VaultCluster) spec(i int) (procSpec, error) {
	base := c.s.vaultNodeConfig(i)
	var peers []string
	for j := range vaultReplicas {
		if j != i {
			peers = append(peers, c.Addrs[j])
		}
	}
	nodeDir := filepath.Join(c.dir, c.node(i))
	base.apiPort, base.clusterPort = c.ports[c.node(i)], c.ports[c.node(i)+"-cluster"]
	base.peerAPIs = peers
	base.dataDir = filepath.Join(nodeDir, "data")
	if err := os.MkdirAll(base.dataDir, 0o700); err != nil {
		return procSpec{}, err
	}
	cfgPath := filepath.Join(nodeDir, "vault.hcl")
	if err := writeFileAtomic(cfgPath, []byte(renderVaultConfig(base)), 0o600); err != nil {
		return procSpec{}, err
	}
	spec, err := c.s.vaultSpec(0) // environment and binary of a sandbox node
	if err != nil {
		return procSpec{}, err
	}
	spec.name, spec.port, spec.dir = c.node(i), base.apiPort, nodeDir
	spec.args = []string{"server", "-config=" + cfgPath}
	spec.logPath = layout{dir: c.s.Dir}.log(spec.name)
	return spec, nil
}

// StartNode starts node i (again, with its data) and waits until its API answers.
func (c *VaultCluster) StartNode(ctx context.Context, i int) error {
	st, err := c.startNode(i)
	if err != nil {
		return err
	}
	return c.waitNode(ctx, i, st)
}

func (c *VaultCluster) startNode(i int) (*started, error) {
	if p, ok := c.s.process(c.node(i)); ok && p.alive() {
		return nil, fmt.Errorf("sandbox: %s is already running (pid %d)", p.Name, p.PID)
	}
	spec, err := c.spec(i)
	if err != nil {
		return nil, err
	}
	st, err := startProcess(spec, c.s.dieWithParent)
	if err != nil {
		return nil, err
	}
	return st, c.s.record(st)
}

func (c *VaultCluster) waitNode(ctx context.Context, i int, st *started) error {
	client, err := tlsClient(c.s.CACertFile, "", "")
	if err != nil {
		return err
	}
	return waitFor(ctx, st, defaultReadyWait, func(ctx context.Context) error {
		_, err := vaultHealth(ctx, client, c.Addrs[i])
		return err
	}, nil)
}

// StopNode kills node i with SIGKILL (a crash) and waits until it is gone.
func (c *VaultCluster) StopNode(i int) error {
	p, ok := c.s.process(c.node(i))
	if !ok || !p.alive() {
		return fmt.Errorf("sandbox: %s is not running", c.node(i))
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return err
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.alive() || !groupGone(p.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: %s (pid %d) still running after SIGKILL", p.Name, p.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return c.s.markStopped(p.Name)
}

// Stop stops every node of the cluster and keeps its data directory.
func (c *VaultCluster) Stop() error {
	var procs []Process
	for i := range vaultReplicas {
		if p, ok := c.s.process(c.node(i)); ok && p.alive() {
			procs = append(procs, p)
		}
	}
	if err := stopProcesses(procs, 10*time.Second); err != nil {
		return err
	}
	for _, p := range procs {
		if err := c.s.markStopped(p.Name); err != nil {
			return err
		}
	}
	return nil
}
