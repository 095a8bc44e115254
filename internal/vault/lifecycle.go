package vault

import (
	"context"
	"fmt"
	"io"
)

// Lifecycle is what upgrades and snapshots need of a Vault node beyond Client: Raft snapshots
// and the leader's step-down. It is kept out of Client so that the many test doubles of Client
// need not grow; the real client implements it, and AsLifecycle finds it.
type Lifecycle interface {
	// RaftSnapshot streams a snapshot of the whole Raft store to w (GET
	// sys/storage/raft/snapshot); the client checks that the archive ends with its sealed
	// checksums, so a snapshot cut short is an error, not a short file.
	RaftSnapshot(ctx context.Context, w io.Writer) error
	// RaftSnapshotRestore replaces the cluster's data with the snapshot read from r (POST
	// sys/storage/raft/snapshot). force uses snapshot-force, which skips Vault's check that
	// the snapshot was sealed with this cluster's keys.
	RaftSnapshotRestore(ctx context.Context, r io.Reader, force bool) error
	// StepDown makes the active node give up leadership (PUT sys/step-down).
	StepDown(ctx context.Context) error
}

// AsLifecycle returns c's Lifecycle methods, or an error naming what cannot do them.
func AsLifecycle(c Client) (Lifecycle, error) {
	if l, ok := c.(Lifecycle); ok {
		return l, nil
	}
	return nil, fmt.Errorf("vault: this client (%T) cannot take snapshots or step down", c)
}

func (c *httpClient) RaftSnapshot(ctx context.Context, w io.Writer) error {
	return c.api.Sys().RaftSnapshotWithContext(ctx, w)
}

func (c *httpClient) RaftSnapshotRestore(ctx context.Context, r io.Reader, force bool) error {
	return c.api.Sys().RaftSnapshotRestoreWithContext(ctx, r, force)
}

func (c *httpClient) StepDown(ctx context.Context) error {
	return c.api.Sys().StepDownWithContext(ctx)
}
