package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"
)

// commitRetryWait is how long a consumer with offsets left to commit waits
// for a new batch before it retries the commit alone.
const commitRetryWait = 500 * time.Millisecond

// committer commits a consumer's offsets synchronously. Offsets whose
// commit failed stay pending: they are committed with the next batch, or
// alone when no batch comes, so a failed commit at the end of a stream does
// not leave the group's offsets behind (a restart would replay more than
// needed; the fences would skip it, but lag would never reach zero).
type committer struct {
	group   string
	m       *Metrics
	log     *slog.Logger
	lag     *lagTracker
	pending []kafka.Message // the last message per partition not yet committed
}

// retryAfter is how long to wait for the next batch before retrying the
// pending commit alone: 0 (wait for ever) when nothing is pending.
func (c *committer) retryAfter() time.Duration {
	if len(c.pending) == 0 {
		return 0
	}
	return commitRetryWait
}

// commit commits msgs together with what is pending.
func (c *committer) commit(ctx context.Context, r *kafka.Reader, msgs []kafka.Message) {
	out := LastPerPartition(append(c.pending, msgs...))
	if len(out) == 0 {
		// Nothing to commit: kafka-go would still queue the request and
		// wait for a group generation, which never comes while the broker
		// is down (a shutdown then waited for run.shutdown_timeout).
		return
	}
	if err := r.CommitMessages(ctx, out...); err != nil {
		c.m.Commits.WithLabelValues(c.group, "error").Inc()
		if len(c.pending) == 0 {
			c.log.Warn("committing offsets failed; retrying (a replay meanwhile is fenced)", "err", err)
		}
		c.pending = out
		return
	}
	c.m.Commits.WithLabelValues(c.group, "ok").Inc()
	c.pending = nil
	if len(msgs) > 0 {
		c.lag.committed(msgs)
	}
}

// retry commits what is pending, if anything; it reports whether it tried.
func (c *committer) retry(ctx context.Context, r *kafka.Reader) bool {
	if len(c.pending) == 0 {
		return false
	}
	c.commit(ctx, r, nil)
	return true
}

// consume hands each collected batch to handle (which retries until it
// succeeds) and commits the batch once handle returned nil; with a commit
// pending and no batch coming it retries the commit alone. It returns when
// ctx ends, or when handle fails: only when procCtx, ctx's shutdown grace,
// ran out.
func consume(ctx, procCtx context.Context, r *kafka.Reader, bt *batches, cm *committer, handle func([]kafka.Message) error) {
	for {
		msgs, ok := bt.next(ctx, cm.retryAfter())
		if !ok {
			return
		}
		if msgs == nil {
			cm.retry(procCtx, r)
			continue
		}
		if err := handle(msgs); err != nil {
			return
		}
		cm.commit(procCtx, r, msgs)
		if ctx.Err() != nil {
			return
		}
	}
}

// LastPerPartition returns the message with the highest offset of each
// partition: what a commit of msgs needs.
func LastPerPartition(msgs []kafka.Message) []kafka.Message {
	last := make(map[int]kafka.Message)
	for _, m := range msgs {
		if p, ok := last[m.Partition]; !ok || m.Offset > p.Offset {
			last[m.Partition] = m
		}
	}
	out := make([]kafka.Message, 0, len(last))
	for _, m := range last {
		out = append(out, m)
	}
	return out
}

// consumeWindowed is consume for a consumer whose handle only takes a
// batch in (into memory) and whose flush stores what the batches taken
// since the last flush hold: flush runs once window has passed since the
// first of them (and when ctx ends), and their offsets are committed
// once it returned nil. With a commit pending and no batch coming it
// retries the commit alone. It returns when ctx ends, or when handle or
// flush fails: only when procCtx, ctx's shutdown grace, ran out.
func consumeWindowed(ctx, procCtx context.Context, r *kafka.Reader, bt *batches, cm *committer, window time.Duration,
	handle func([]kafka.Message) error, flush func() error) {
	var held []kafka.Message
	var since time.Time
	store := func() bool {
		if len(held) == 0 {
			return true
		}
		if err := flush(); err != nil {
			return false
		}
		cm.commit(procCtx, r, held)
		held, since = nil, time.Time{}
		return true
	}
	for {
		wait := cm.retryAfter()
		if len(held) > 0 {
			due := max(time.Until(since.Add(window)), time.Millisecond)
			if wait == 0 || due < wait {
				wait = due
			}
		}
		msgs, ok := bt.next(ctx, wait)
		if !ok {
			store()
			return
		}
		if msgs == nil {
			if len(held) > 0 && time.Since(since) >= window {
				if !store() {
					return
				}
			} else {
				cm.retry(procCtx, r)
			}
			continue
		}
		if err := handle(msgs); err != nil {
			return
		}
		if len(held) == 0 {
			since = time.Now()
		}
		for _, m := range LastPerPartition(msgs) {
			// Until the commit only the position (and what the lag
			// tracker reads) is kept, not the payload.
			m.Key, m.Value, m.Headers = nil, nil, nil
			held = append(held, m)
		}
		held = LastPerPartition(held)
		if ctx.Err() != nil || time.Since(since) >= window {
			if !store() {
				return
			}
		}
		if ctx.Err() != nil {
			return
		}
	}
}
