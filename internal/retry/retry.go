// Package retry holds the waiting that recstream's retry loops share: a
// sleep that ends with its context and an exponential backoff.
package retry

import (
	"context"
	"time"
)

// Sleep waits for d or until ctx ends; it reports whether the whole d
// passed (false: ctx ended first). A d <= 0 passes at once.
func Sleep(ctx context.Context, d time.Duration) bool {
	if d <= 0 {
		return true
	}
	t := time.NewTimer(d)
	defer t.Stop()
	select {
	case <-ctx.Done():
		return false
	case <-t.C:
		return true
	}
}

// Backoff is an exponential backoff: Next returns Min, then twice the
// previous wait, up to Max. The zero value waits Min = Max = 0.
type Backoff struct {
	Min, Max time.Duration
	next     time.Duration
}

// Next returns the wait before the next attempt.
func (b *Backoff) Next() time.Duration {
	d := max(b.next, b.Min)
	b.next = min(2*d, b.Max)
	return min(d, b.Max)
}

// Reset makes the next wait Min again.
func (b *Backoff) Reset() { b.next = 0 }

// Wait sleeps for the next wait (see Sleep); it reports false when ctx
// ended first.
func (b *Backoff) Wait(ctx context.Context) bool { return Sleep(ctx, b.Next()) }
