package sandbox

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"net/http"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"time"
)

// vaultNodeConfig is what one node's HCL needs.
type vaultNodeConfig struct {
	index       int
	apiPort     int
	clusterPort int
	peerAPIs    []string // https://127.0.0.1:PORT of the other nodes
	dataDir     string
	certFile    string
	keyFile     string
	caFile      string
	kmsEndpoint string
	kmsRegion   string
	kmsKeyAlias string
}

// renderVaultConfig writes a node's server configuration. The awskms stanza deliberately has no
// access_key/secret_key: credentials never go in the seal stanza (in production they come from
// IRSA or the environment); the sandbox passes dummy ones through the process environment.
func renderVaultConfig(c vaultNodeConfig) string {
	q := strconv.Quote
	var b strings.Builder
	fmt.Fprintf(&b, "# vaultctl-sandbox: node %s; rewritten by every `vaultctl-sandbox up`.\n", vaultName(c.index))
	fmt.Fprintf(&b, "ui            = false\n")
	fmt.Fprintf(&b, "disable_mlock = true\n") // raft on a laptop/CI runner; mlock needs privileges
	fmt.Fprintf(&b, "cluster_name  = %s\n", q(clusterName))
	fmt.Fprintf(&b, "api_addr      = %s\n", q(fmt.Sprintf("https://127.0.0.1:%d", c.apiPort)))
	fmt.Fprintf(&b, "cluster_addr  = %s\n", q(fmt.Sprintf("https://127.0.0.1:%d", c.clusterPort)))
	fmt.Fprintf(&b, "log_level     = \"info\"\n\n")

	fmt.Fprintf(&b, "storage \"raft\" {\n")
	fmt.Fprintf(&b, "  path    = %s\n", q(c.dataDir))
	fmt.Fprintf(&b, "  node_id = %s\n", q(vaultName(c.index)))
	// 1 = fastest Raft timers (elections in ~1-3 s); never write 0, which breaks init.
	fmt.Fprintf(&b, "  performance_multiplier = 1\n")
	for _, peer := range c.peerAPIs {
		fmt.Fprintf(&b, "\n  retry_join {\n")
		fmt.Fprintf(&b, "    leader_api_addr     = %s\n", q(peer))
		fmt.Fprintf(&b, "    leader_ca_cert_file = %s\n", q(c.caFile))
		fmt.Fprintf(&b, "  }\n")
	}
	fmt.Fprintf(&b, "}\n\n")

	fmt.Fprintf(&b, "listener \"tcp\" {\n")
	fmt.Fprintf(&b, "  address         = %s\n", q(fmt.Sprintf("127.0.0.1:%d", c.apiPort)))
	fmt.Fprintf(&b, "  cluster_address = %s\n", q(fmt.Sprintf("127.0.0.1:%d", c.clusterPort)))
	fmt.Fprintf(&b, "  tls_cert_file   = %s\n", q(c.certFile))
	fmt.Fprintf(&b, "  tls_key_file    = %s\n", q(c.keyFile))
	fmt.Fprintf(&b, "  tls_min_version = \"tls12\"\n")
	fmt.Fprintf(&b, "}\n\n")

	fmt.Fprintf(&b, "seal \"awskms\" {\n")
	fmt.Fprintf(&b, "  region     = %s\n", q(c.kmsRegion))
	fmt.Fprintf(&b, "  kms_key_id = %s\n", q(c.kmsKeyAlias))
	fmt.Fprintf(&b, "  endpoint   = %s\n", q(c.kmsEndpoint))
	fmt.Fprintf(&b, "}\n")
	return b.String()
}

func (s *Sandbox) vaultNodeConfig(i int) vaultNodeConfig {
	l := layout{dir: s.Dir}
	// Under the lock: during Up another component's port may move (retryOnTakenPort).
	s.mu.Lock()
	ports := maps.Clone(s.Ports)
	s.mu.Unlock()
	var peers []string
	for j := range vaultReplicas {
		if j != i {
			peers = append(peers, fmt.Sprintf("https://127.0.0.1:%d", ports[vaultName(j)]))
		}
	}
	return vaultNodeConfig{
		index:       i,
		apiPort:     ports[vaultName(i)],
		clusterPort: ports[vaultClusterPort(i)],
		peerAPIs:    peers,
		dataDir:     filepath.Join(l.vaultNode(i), "data"),
		certFile:    filepath.Join(l.pki(), "vault.crt"),
		keyFile:     filepath.Join(l.pki(), "vault.key"),
		caFile:      s.CACertFile,
		kmsEndpoint: s.KMSEndpoint,
		kmsRegion:   s.KMSRegion,
		kmsKeyAlias: s.KMSKeyAlias,
	}
}

// vaultSpec writes node i's configuration and returns how to run it.
func (s *Sandbox) vaultSpec(i int) (procSpec, error) {
	l := layout{dir: s.Dir}
	c := s.vaultNodeConfig(i)
	if err := os.MkdirAll(c.dataDir, 0o700); err != nil {
		return procSpec{}, err
	}
	if err := writeFileAtomic(l.vaultConfig(i), []byte(renderVaultConfig(c)), 0o600); err != nil {
		return procSpec{}, err
	}
	return procSpec{
		name: vaultName(i), path: filepath.Join(s.ToolsDir, "vault"), port: c.apiPort,
		dir: l.vaultNode(i),
		env: cleanEnv(
			"AWS_ACCESS_KEY_ID="+dummyAccessKeyID,
			"AWS_SECRET_ACCESS_KEY="+dummySecretKey,
			"AWS_EC2_METADATA_DISABLED=true", // never wait on an instance metadata service
		),
		args: []string{"server", "-config=" + l.vaultConfig(i)},
	}, nil
}

// startVault starts the three nodes (after KMS: Vault exits at once if its seal is unreachable)
// and waits for each API to answer. The cluster stays uninitialized: init is the product's job.
// Each node's retry_join names the others' addresses, so when one node has to move to a fresh
// port, all three start again on the new configuration.
func (u *upper) startVault(ctx context.Context) error {
	client, err := tlsClient(u.s.CACertFile, "", "")
	if err != nil {
		return err
	}
	var nodes []*started
	return retryOnTakenPort(u.ports, u.logf, vaultNodePorts, func() ([]*started, error) {
		if err := stopStarted(nodes); err != nil {
			return nil, err
		}
		nodes = nodes[:0]
		for i := range vaultReplicas {
			spec, err := u.s.vaultSpec(i)
			if err != nil {
				return nodes, err
			}
			st, err := u.start(spec, vaultName(i), vaultClusterPort(i))
			if err != nil {
				return nodes, err
			}
			nodes = append(nodes, st)
		}
		return nodes, waitAll(nodes, func(i int, st *started) error {
			addr := u.s.VaultAddrs[i]
			var h VaultHealth
			err := waitFor(ctx, st, u.o.ReadyTimeout, func(ctx context.Context) error {
				var err error
				h, err = vaultHealth(ctx, client, addr)
				return err
			}, nil)
			if err == nil {
				u.logf("%s ready (pid %d, %s)", st.Name, st.PID, h)
			}
			return err
		})
	}, u.moved)
}

// vaultNodePorts names the ports of a Vault node: its API and its cluster port.
func vaultNodePorts(st *started) []string { return []string{st.Name, st.Name + "-cluster"} }

// waitAll runs wait for every node at once and joins the errors: every node that lost a port
// in this attempt is then known, and all move together.
func waitAll(nodes []*started, wait func(int, *started) error) error {
	errs := make([]error, len(nodes))
	var wg sync.WaitGroup
	for i, st := range nodes {
		wg.Add(1)
		go func() {
			defer wg.Done()
			errs[i] = wait(i, st)
		}()
	}
	wg.Wait()
	return errors.Join(errs...)
}

// stopStarted stops what is still running of processes started earlier.
func stopStarted(sts []*started) error {
	var procs []Process
	for _, st := range sts {
		if !st.exited() {
			procs = append(procs, st.Process)
		}
	}
	return stopProcesses(procs, stopGrace)
}

// VaultHealth is the part of sys/health the sandbox reports.
type VaultHealth struct {
	Initialized bool   `json:"initialized"`
	Sealed      bool   `json:"sealed"`
	Standby     bool   `json:"standby"`
	Version     string `json:"version"`
}

func (h VaultHealth) String() string {
	switch {
	case !h.Initialized:
		return "uninitialized"
	case h.Sealed:
		return "sealed"
	case h.Standby:
		return "unsealed, standby"
	default:
		return "unsealed, active"
	}
}

// vaultHealth asks sys/health with every state mapped to 200, so any answer means "API up".
func vaultHealth(ctx context.Context, c *http.Client, addr string) (VaultHealth, error) {
	var h VaultHealth
	url := addr + "/v1/sys/health?standbyok=true&perfstandbyok=true&uninitcode=200&sealedcode=200&drsecondarycode=200&performancestandbycode=200"
	req, err := http.NewRequestWithContext(ctx, http.MethodGet, url, nil)
	if err != nil {
		return h, err
	}
	resp, err := c.Do(req)
	if err != nil {
		return h, err
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return h, fmt.Errorf("sys/health: %s", resp.Status)
	}
	return h, json.NewDecoder(resp.Body).Decode(&h)
}

// StopVaultNode kills node i by PID with SIGKILL (a crash, not a shutdown) and waits until it is gone.
func (s *Sandbox) StopVaultNode(i int) error {
	if i < 0 || i >= len(s.VaultAddrs) {
		return fmt.Errorf("sandbox: no Vault node %d", i)
	}
	p, ok := s.process(vaultName(i))
	if !ok || !p.alive() {
		return fmt.Errorf("sandbox: %s is not running", vaultName(i))
	}
	if err := p.signal(syscall.SIGKILL); err != nil {
		return fmt.Errorf("sandbox: kill %s (pid %d): %w", p.Name, p.PID, err)
	}
	deadline := time.Now().Add(10 * time.Second)
	for p.alive() || !groupGone(p.PID) {
		if time.Now().After(deadline) {
			return fmt.Errorf("sandbox: %s (pid %d) still running after SIGKILL", p.Name, p.PID)
		}
		time.Sleep(50 * time.Millisecond)
	}
	return s.markStopped(p.Name)
}

// StartVaultNode starts node i again with its data and waits until its API answers. With an
// initialized cluster the node unseals itself through KMS and rejoins Raft.
func (s *Sandbox) StartVaultNode(ctx context.Context, i int) error {
	if i < 0 || i >= len(s.VaultAddrs) {
		return fmt.Errorf("sandbox: no Vault node %d", i)
	}
	if p, ok := s.process(vaultName(i)); ok && p.alive() {
		return fmt.Errorf("sandbox: %s is already running (pid %d)", p.Name, p.PID)
	}
	spec, err := s.vaultSpec(i)
	if err != nil {
		return err
	}
	spec.logPath = layout{dir: s.Dir}.log(spec.name)
	st, err := startProcess(spec, s.dieWithParent)
	if err != nil {
		return err
	}
	if err := s.record(st); err != nil {
		return err
	}
	client, err := tlsClient(s.CACertFile, "", "")
	if err != nil {
		return err
	}
	return waitFor(ctx, st, defaultReadyWait, func(ctx context.Context) error {
		_, err := vaultHealth(ctx, client, s.VaultAddrs[i])
		return err
	}, nil)
}
