// Package topk selects the k best elements of a slice.
package topk

import "slices"

// Best returns the k best elements of xs, best first, where cmp(a, b) < 0
// says a ranks before b (a strict total order, as slices.SortFunc takes
// it). It reorders xs. For k much smaller than len(xs) it keeps a bounded
// heap instead of sorting everything: O(n log k).
func Best[T any](xs []T, k int, cmp func(a, b T) int) []T {
	if k <= 0 {
		return xs[:0]
	}
	if len(xs) <= 2*k {
		slices.SortFunc(xs, cmp)
		return xs[:min(k, len(xs))]
	}
	// xs[:k] is a heap whose root is the worst of the k kept.
	h := xs[:k]
	worse := func(i, j int) bool { return cmp(h[j], h[i]) < 0 }
	down := func(i int) {
		for {
			l := 2*i + 1
			if l >= k {
				return
			}
			w := l
			if r := l + 1; r < k && worse(r, l) {
				w = r
			}
			if !worse(w, i) {
				return
			}
			h[i], h[w] = h[w], h[i]
			i = w
		}
	}
	for i := k/2 - 1; i >= 0; i-- {
		down(i)
	}
	for _, x := range xs[k:] {
		if cmp(x, h[0]) < 0 {
			h[0] = x
			down(0)
		}
	}
	slices.SortFunc(h, cmp)
	return h
}
