package auditlog

import (
	"cmp"
	"container/heap"
	"slices"
)

// topK counts keys in bounded memory with the Space-Saving algorithm (Metwally et al., 2005):
// it holds at most capacity counters; while fewer distinct keys than that were seen every
// count is exact, and after that a new key takes over the smallest counter and inherits its
// count as an over-estimate (recorded in overcount). Every key whose true count exceeds
// total/capacity is guaranteed to be held. V is per-key detail kept with the counter.
type topK[K comparable, V any] struct {
	capacity int
	index    map[K]int // key -> position in h
	h        counterHeap[K, V]
	total    int64
	evicted  bool
}

type counter[K comparable, V any] struct {
	key       K
	count     int64
	overcount int64 // upper bound of how much of count belongs to evicted keys
	val       V
}

func newTopK[K comparable, V any](capacity int) *topK[K, V] {
	t := &topK[K, V]{capacity: capacity, index: make(map[K]int)}
	t.h.index = t.index
	return t
}

// add counts one occurrence of k and returns its detail to update. isNew is true when the
// counter was (re)assigned to k, so the caller initialises val.
func (t *topK[K, V]) add(k K) (val *V, isNew bool) {
	t.total++
	if i, ok := t.index[k]; ok {
		c := &t.h.items[i]
		c.count++
		heap.Fix(&t.h, i)
		return &t.h.items[t.index[k]].val, false
	}
	if len(t.h.items) < t.capacity {
		heap.Push(&t.h, counter[K, V]{key: k, count: 1})
		return &t.h.items[t.index[k]].val, true
	}
	// Replace the smallest counter (the heap's root).
	t.evicted = true
	root := &t.h.items[0]
	delete(t.index, root.key)
	*root = counter[K, V]{key: k, count: root.count + 1, overcount: root.count}
	t.index[k] = 0
	heap.Fix(&t.h, 0)
	return &t.h.items[t.index[k]].val, true
}

// sorted returns the counters, largest first (ties by key order via less), at most n (all
// when n <= 0).
func (t *topK[K, V]) sorted(n int, less func(a, b K) int) []counter[K, V] {
	out := slices.Clone(t.h.items)
	slices.SortFunc(out, func(a, b counter[K, V]) int {
		if c := cmp.Compare(b.count, a.count); c != 0 {
			return c
		}
		return less(a.key, b.key)
	})
	if n > 0 && len(out) > n {
		out = out[:n]
	}
	return out
}

// counterHeap is a min-heap on count, keeping index in step.
type counterHeap[K comparable, V any] struct {
	items []counter[K, V]
	index map[K]int
}

func (h *counterHeap[K, V]) Len() int           { return len(h.items) }
func (h *counterHeap[K, V]) Less(i, j int) bool { return h.items[i].count < h.items[j].count }
func (h *counterHeap[K, V]) Swap(i, j int) {
	h.items[i], h.items[j] = h.items[j], h.items[i]
	h.index[h.items[i].key] = i
	h.index[h.items[j].key] = j
}
func (h *counterHeap[K, V]) Push(x any) {
	c := x.(counter[K, V])
	h.index[c.key] = len(h.items)
	h.items = append(h.items, c)
}
func (h *counterHeap[K, V]) Pop() any {
	c := h.items[len(h.items)-1]
	h.items = h.items[:len(h.items)-1]
	delete(h.index, c.key)
	return c
}
