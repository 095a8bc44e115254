package phases

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"time"
)

// Checkpoint records that a phase converged with given inputs. It holds nothing secret: a
// summary is facts like "3 voters", never tokens or keys.
type Checkpoint struct {
	Phase     string    `json:"phase"`
	InputHash string    `json:"inputHash"`
	Version   string    `json:"vaultctlVersion"`
	Time      time.Time `json:"time"`
	Summary   string    `json:"summary,omitempty"`
}

// CheckpointStore keeps checkpoints where every runner can see them (in-cluster: a ConfigMap).
type CheckpointStore interface {
	Get(ctx context.Context) (map[string]Checkpoint, error)
	Put(ctx context.Context, c Checkpoint) error
}

// MemoryStore is a CheckpointStore for tests and for runs without a cluster.
type MemoryStore struct {
	Items map[string]Checkpoint
	Puts  int
}

// Get returns a copy of the stored checkpoints.
func (m *MemoryStore) Get(context.Context) (map[string]Checkpoint, error) {
	out := map[string]Checkpoint{}
	for k, v := range m.Items {
		out[k] = v
	}
	return out, nil
}

// Put stores c.
func (m *MemoryStore) Put(_ context.Context, c Checkpoint) error {
	if m.Items == nil {
		m.Items = map[string]Checkpoint{}
	}
	m.Items[c.Phase] = c
	m.Puts++
	return nil
}

// PhaseStatus is what the checkpoints say about one phase.
type PhaseStatus struct {
	Phase      string      `json:"phase"`
	Applied    bool        `json:"applied"`
	Stale      bool        `json:"inputsChanged"`        // the config changed since it was applied
	Unreadable bool        `json:"unreadable,omitempty"` // its checkpoint could not be parsed
	Checkpoint *Checkpoint `json:"checkpoint,omitempty"`
}

// PhaseStatuses reads the in-cluster checkpoints for every phase, in order.
func (e *Env) PhaseStatuses(ctx context.Context) ([]PhaseStatus, error) {
	cps, err := (&ConfigMapStore{Client: e.Kube, Namespace: e.Config.Vault.Namespace}).Get(ctx)
	var corrupt *CorruptCheckpointsError
	if err != nil && !errors.As(err, &corrupt) {
		return nil, fmt.Errorf("reading checkpoints from %s/%s: %w", e.Config.Vault.Namespace, CheckpointConfigMap, err)
	}
	var rows []PhaseStatus
	for _, p := range All(e) {
		row := PhaseStatus{Phase: p.Name()}
		if cp, ok := cps[p.Name()]; ok {
			row.Applied, row.Checkpoint = true, &cp
			row.Stale = cp.InputHash != InputHash(p.Inputs())
		}
		row.Unreadable = corrupt != nil && slices.Contains(corrupt.Phases, p.Name())
		rows = append(rows, row)
	}
	return rows, nil
}
