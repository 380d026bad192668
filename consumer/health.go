package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"

	"github.com/recstream/recstream/internal/retry"
)

// Every step a consumer cannot skip (applying a batch, publishing what it
// produced, committing) is retried with this backoff until it succeeds or
// the shutdown grace ends.
const (
	retryMin = 50 * time.Millisecond
	retryMax = 2 * time.Second
)

// health is one role's readiness: ready unless the role is retrying a
// failed step. The processor reads it into its readiness check, which sets
// recstream_ready{role}.
type health struct {
	role   string
	m      *Metrics
	log    *slog.Logger
	errors prometheus.Counter // incremented per failed attempt; nil: not counted
	ready  atomic.Bool
}

// start marks the role ready.
func (h *health) start() {
	h.ready.Store(true)
}

// Ready reports whether the role's last step went through.
func (h *health) Ready() bool { return h.ready.Load() }

// retry runs f until it succeeds or ctx ends, with backoff, marking the
// role not ready meanwhile; the first failure of a call is logged (also
// one before the role started, such as a topic that does not exist), and
// its recovery. It returns ctx's error when ctx ended first.
func (h *health) retry(ctx context.Context, what string, f func() error) error {
	b := retry.Backoff{Min: retryMin, Max: retryMax}
	failed := false
	for {
		err := f()
		if err == nil {
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if h.errors != nil {
			h.errors.Inc()
		}
		h.ready.Store(false)
		if !failed {
			h.log.Warn(what+" failed; retrying until it succeeds", "err", err)
			failed = true
		}
		if !b.Wait(ctx) {
			return ctx.Err()
		}
	}
	h.ready.Store(true)
	if failed {
		h.log.Info(what + " succeeded; recovered")
	}
	return nil
}

// graceContext returns a context for the work of a consumer whose Run
// context is ctx: it ends grace after ctx ends, so that a batch in flight
// at shutdown can still be finished and committed, or when cancel is
// called.
func graceContext(ctx context.Context, grace time.Duration) (context.Context, context.CancelFunc) {
	gctx, cancel := context.WithCancel(context.WithoutCancel(ctx))
	go func() {
		select {
		case <-ctx.Done():
			t := time.NewTimer(grace)
			defer t.Stop()
			select {
			case <-t.C:
				cancel()
			case <-gctx.Done():
			}
		case <-gctx.Done():
		}
	}()
	return gctx, cancel
}

// positive checks name, value pairs (ints and durations) of a consumer's
// options: each must be above zero.
func positive(consumer string, pairs ...any) error {
	for i := 0; i+1 < len(pairs); i += 2 {
		bad := false
		switch v := pairs[i+1].(type) {
		case int:
			bad = v <= 0
		case time.Duration:
			bad = v <= 0
		}
		if bad {
			return fmt.Errorf("consumer: %s: %s %v: want > 0", consumer, pairs[i], pairs[i+1])
		}
	}
	return nil
}
