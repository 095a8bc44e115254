// Package phases is vaultctl's installer engine: each phase observes the live state, reports what
// differs from the config, and applies only that difference. Checkpoints record what was applied
// so a fresh CI runner can explain where the last one stopped; they never replace observing.
package phases

import (
	"context"
	"crypto/sha256"
	"encoding/hex"
	"encoding/json"
	"errors"
	"fmt"
	"strings"
)

// Phase is one step of the installer. Check must not change anything; Apply gets the diff Check
// found and makes the live state match the config.
type Phase interface {
	Name() string
	// Description is a short line for plan output and `apply phase --help`.
	Description() string
	// Inputs is the part of the config the phase depends on; its hash goes into the checkpoint.
	Inputs() any
	Check(ctx context.Context) (Diff, error)
	Apply(ctx context.Context, d Diff) error
}

// Action says what a change does to the live state.
type Action string

// The change kinds a diff can hold.
const (
	Create  Action = "create"
	Update  Action = "update"
	Delete  Action = "delete"
	Restart Action = "restart" // a pending restart the phase cannot do by itself (OnDelete updates)
)

// Change is one difference between the config and the live state.
type Change struct {
	Action Action `json:"action"`
	Object string `json:"object"`           // what, e.g. "KMS alias alias/vault-unseal-key"
	Detail string `json:"detail,omitempty"` // why, e.g. "not found"
}

func (c Change) String() string {
	s := string(c.Action) + " " + c.Object
	if c.Detail != "" {
		s += " (" + c.Detail + ")"
	}
	return s
}

// Diff is what a phase's Check found. Facts are observations worth showing even when nothing
// differs ("Kubernetes v1.36.3", "3 voters").
type Diff struct {
	Changes []Change `json:"changes,omitempty"`
	Facts   []string `json:"facts,omitempty"`
}

// Empty reports whether the live state already matches.
func (d Diff) Empty() bool { return len(d.Changes) == 0 }

// Error is a phase failure that says what failed and what to do next.
type Error struct {
	Phase string `json:"phase"`
	What  string `json:"error"`
	Hint  string `json:"hint,omitempty"`
}

func (e *Error) Error() string {
	s := fmt.Sprintf("phase %s: %s", e.Phase, e.What)
	if e.Hint != "" {
		s += "\n  fix: " + e.Hint
	}
	return s
}

// hinted is an error that carries a next step; phases return it through Fail.
type hinted struct {
	err  error
	hint string
}

func (h *hinted) Error() string { return h.err.Error() }
func (h *hinted) Unwrap() error { return h.err }

// Fail returns an error whose hint tells the user what to do.
func Fail(hint, format string, args ...any) error {
	return &hinted{err: fmt.Errorf(format, args...), hint: hint}
}

// Failures joins several independent failures into one, keeping each hint.
func Failures(errs []error) error {
	if len(errs) == 0 {
		return nil
	}
	if len(errs) == 1 {
		return errs[0]
	}
	var msgs, hints []string
	for _, e := range errs {
		msgs = append(msgs, e.Error())
		var h *hinted
		if errors.As(e, &h) && h.hint != "" {
			hints = append(hints, h.hint)
		}
	}
	return &hinted{err: errors.New(strings.Join(msgs, "; ")), hint: strings.Join(hints, "; ")}
}

// WithHint renders an error with its next step, for errors that reach the user outside a
// phase (connecting, locking).
func WithHint(err error) error {
	var h *hinted
	if errors.As(err, &h) && h.hint != "" {
		return fmt.Errorf("%s\n  fix: %s", err, h.hint)
	}
	return err
}

func asPhaseError(phase string, err error) *Error {
	var pe *Error
	if errors.As(err, &pe) {
		return pe
	}
	e := &Error{Phase: phase, What: err.Error()}
	var h *hinted
	if errors.As(err, &h) {
		e.Hint = h.hint
	}
	return e
}

// InputHash is the stable hash of a phase's inputs: JSON of the value, SHA-256, 16 hex digits.
func InputHash(v any) string {
	b, err := json.Marshal(v)
	if err != nil {
		// Inputs are plain config structs; failing to marshal them is a programming error.
		panic(fmt.Sprintf("phases: inputs not serializable: %v", err))
	}
	sum := sha256.Sum256(b)
	return hex.EncodeToString(sum[:8])
}
