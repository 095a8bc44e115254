package phases

import (
	"context"
	"fmt"

	"golang.org/x/sync/errgroup"
)

// step is one observed difference and how to remove it.
type step struct {
	change Change
	apply  func(ctx context.Context) error
	// bookkeeping steps (the ownership record) run after the changes they record.
	bookkeeping bool
}

// appendStep appends s when there is one.
func appendStep(steps []step, s *step) []step {
	if s == nil {
		return steps
	}
	return append(steps, *s)
}

// observer is how step-based phases look at the estate: the steps that would remove each
// difference, and facts worth showing.
type observer func(ctx context.Context) ([]step, []string, error)

// checkObserved is Check for a step-based phase.
func checkObserved(ctx context.Context, observe observer) (Diff, error) {
	steps, facts, err := observe(ctx)
	if err != nil {
		return Diff{}, err
	}
	d := Diff{Facts: facts}
	for _, s := range steps {
		d.Changes = append(d.Changes, s.change)
	}
	return d, nil
}

// applyObserved is Apply for a step-based phase: it observes again, since the estate may have
// moved since Check, and applies each step in order.
func applyObserved(ctx context.Context, observe observer) error {
	steps, _, err := observe(ctx)
	if err != nil {
		return err
	}
	for _, s := range steps {
		if err := s.apply(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.change, err)
		}
	}
	return nil
}

// concurrency bounds how many requests a phase has in flight against Vault or the API server:
// cost must not grow one round trip per object with the estate, nor flood a small Vault.
const concurrency = 32

// forEach runs f for every item with bounded concurrency and returns the results in the
// items' order; the first error wins and cancels the rest.
func forEach[T, R any](ctx context.Context, items []T, f func(ctx context.Context, item T) (R, error)) ([]R, error) {
	out := make([]R, len(items))
	g, ctx := errgroup.WithContext(ctx)
	g.SetLimit(concurrency)
	for i, it := range items {
		g.Go(func() error {
			r, err := f(ctx, it)
			out[i] = r
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	return out, nil
}

// applyConcurrently is Apply for a phase whose steps are independent of each other (one
// object each): it observes again, applies the steps with bounded concurrency, then the
// bookkeeping. The first error stops the rest and names its step.
func applyConcurrently(ctx context.Context, observe observer) error {
	steps, _, err := observe(ctx)
	if err != nil {
		return err
	}
	var changes, books []step
	for _, s := range steps {
		if s.bookkeeping {
			books = append(books, s)
		} else {
			changes = append(changes, s)
		}
	}
	if _, err := forEach(ctx, changes, func(ctx context.Context, s step) (struct{}, error) {
		if err := s.apply(ctx); err != nil {
			return struct{}{}, fmt.Errorf("%s: %w", s.change, err)
		}
		return struct{}{}, nil
	}); err != nil {
		return err
	}
	for _, s := range books {
		if err := s.apply(ctx); err != nil {
			return fmt.Errorf("%s: %w", s.change, err)
		}
	}
	return nil
}
