package phases

import (
	"context"
	"fmt"
	"sort"
	"strings"
	"time"

	"github.com/vaultctl/vaultctl/config"
)

// Raft verifies the cluster the way an operator would: as many voters as replicas, a leader,
// every node healthy (alive and unsealed), and autopilot tuned as configured. Apply waits for
// joining nodes to be promoted; it never removes peers.
type Raft struct {
	In    RaftInputs
	Vault VaultAdmin
	// Poll is how often Apply looks while it waits for the cluster to become healthy.
	Poll time.Duration
}

// RaftInputs is what the raft phase reads of the config.
type RaftInputs struct {
	Replicas int
	Raft     config.Raft
}

func raftInputs(cfg *config.Config) RaftInputs {
	return RaftInputs{Replicas: cfg.Vault.Replicas, Raft: cfg.Vault.Raft}
}

func (p *Raft) Name() string { return "raft" }
func (p *Raft) Description() string {
	return "Raft voters equal replicas, leader elected, all nodes healthy"
}
func (p *Raft) Inputs() any { return p.In }

// ClusterHealth is what status shows about Vault.
type ClusterHealth struct {
	Healthy          bool         `json:"healthy"`
	Leader           string       `json:"leader"`
	Voters           int          `json:"voters"`
	WantVoters       int          `json:"wantVoters"`
	FailureTolerance int          `json:"failureTolerance"`
	Nodes            []NodeHealth `json:"nodes"`
	Problems         []string     `json:"problems,omitempty"`
}

// NodeHealth is one Raft server.
type NodeHealth struct {
	ID      string `json:"id"`
	Address string `json:"address"`
	Status  string `json:"status"` // leader, voter, non-voter
	Healthy bool   `json:"healthy"`
	Node    string `json:"nodeStatus"`
	Version string `json:"version"`
}

// Health reads autopilot's view of the cluster.
func (e *Env) Health(ctx context.Context) (*ClusterHealth, error) {
	return clusterHealth(ctx, e.session(), e.Config.Vault.Replicas)
}

// ClusterHealthOf reads autopilot's view through s, for callers with a Vault client of their
// own (upgrade reaches each pod itself while pods restart).
func ClusterHealthOf(ctx context.Context, s VaultAdmin, replicas int) (*ClusterHealth, error) {
	return clusterHealth(ctx, s, replicas)
}

func clusterHealth(ctx context.Context, s VaultAdmin, replicas int) (*ClusterHealth, error) {
	v, err := s.Admin(ctx)
	if err != nil {
		return nil, err
	}
	st, err := v.AutopilotState(ctx)
	if err != nil {
		return nil, vaultErr("reading autopilot state", err)
	}
	if st == nil {
		return nil, fmt.Errorf("autopilot state is empty: is Vault using integrated storage?")
	}
	h := &ClusterHealth{Healthy: st.Healthy, Leader: st.Leader, Voters: len(st.Voters), WantVoters: replicas, FailureTolerance: st.FailureTolerance}
	for _, s := range st.Servers {
		h.Nodes = append(h.Nodes, NodeHealth{ID: s.ID, Address: s.Address, Status: s.Status, Healthy: s.Healthy, Node: s.NodeStatus, Version: s.Version})
		if !s.Healthy {
			h.Problems = append(h.Problems, fmt.Sprintf("%s is unhealthy (%s, %s)", s.ID, s.Status, s.NodeStatus))
		}
	}
	sort.Slice(h.Nodes, func(i, j int) bool { return h.Nodes[i].ID < h.Nodes[j].ID })
	sort.Strings(h.Problems)
	if h.Leader == "" {
		h.Problems = append(h.Problems, "no leader")
	}
	if h.Voters < h.WantVoters {
		h.Problems = append(h.Problems, fmt.Sprintf("%d of %d voters", h.Voters, h.WantVoters))
	}
	if !st.Healthy && len(h.Problems) == 0 {
		h.Problems = append(h.Problems, "autopilot reports the cluster unhealthy")
	}
	h.Healthy = len(h.Problems) == 0
	return h, nil
}

func (p *Raft) Check(ctx context.Context) (Diff, error) {
	var d Diff
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return d, err
	}
	ap, err := v.AutopilotConfig(ctx)
	if err != nil {
		return d, vaultErr("reading autopilot configuration", err)
	}
	want := p.In.Raft
	if ap.ServerStabilizationTime != want.AutopilotStabilizationTime.Duration || ap.CleanupDeadServers != want.AutopilotCleanupDeadServers {
		d.Changes = append(d.Changes, Change{Update, "autopilot configuration",
			fmt.Sprintf("server_stabilization_time %s, cleanup_dead_servers %v", want.AutopilotStabilizationTime, want.AutopilotCleanupDeadServers)})
	}
	h, err := clusterHealth(ctx, p.Vault, p.In.Replicas)
	if err != nil {
		return d, err
	}
	if !h.Healthy {
		d.Changes = append(d.Changes, Change{Update, "Raft cluster", "wait for: " + strings.Join(h.Problems, "; ")})
		return d, nil
	}
	d.Facts = []string{fmt.Sprintf("%d voters, leader %s, failure tolerance %d", h.Voters, h.Leader, h.FailureTolerance)}
	return d, nil
}

// Apply sets the autopilot configuration, then waits for the cluster to become healthy; a
// node that never joins is reported with what autopilot says about it.
func (p *Raft) Apply(ctx context.Context, _ Diff) error {
	v, err := p.Vault.Admin(ctx)
	if err != nil {
		return err
	}
	want := p.In.Raft
	ap, err := v.AutopilotConfig(ctx)
	if err != nil {
		return vaultErr("reading autopilot configuration", err)
	}
	if ap.ServerStabilizationTime != want.AutopilotStabilizationTime.Duration || ap.CleanupDeadServers != want.AutopilotCleanupDeadServers {
		// Only the keys vaultctl manages: the API client's full struct also sends
		// Enterprise-only fields, which Community Edition rejects.
		body := map[string]any{
			"server_stabilization_time": want.AutopilotStabilizationTime.String(),
			"cleanup_dead_servers":      want.AutopilotCleanupDeadServers,
		}
		if want.AutopilotCleanupDeadServers && ap.MinQuorum == 0 {
			body["min_quorum"] = p.In.Replicas
		}
		if err := v.WriteAutopilotConfig(ctx, body); err != nil {
			return vaultErr("writing autopilot configuration", err)
		}
	}
	timeout := 2*time.Minute + 3*want.AutopilotStabilizationTime.Duration
	deadline := time.Now().Add(timeout)
	for {
		h, err := clusterHealth(ctx, p.Vault, p.In.Replicas)
		if err == nil && h.Healthy {
			return nil
		}
		if time.Now().After(deadline) {
			detail := "no answer"
			if err != nil {
				detail = err.Error()
			} else {
				detail = strings.Join(h.Problems, "; ")
			}
			return Fail("check each node's logs: a node that cannot reach retry_join peers or KMS never joins or unseals",
				"Raft cluster not healthy after %s: %s", timeout.Round(time.Second), detail)
		}
		select {
		case <-ctx.Done():
			return ctx.Err()
		case <-time.After(p.poll()):
		}
	}
}

func (p *Raft) poll() time.Duration {
	if p.Poll > 0 {
		return p.Poll
	}
	return time.Second
}
