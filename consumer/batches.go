package consumer

import (
	"context"
	"log/slog"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/internal/retry"
)

// batches collects a reader's next batch in its own goroutine while the
// consumer applies the current one, so that the batch window (up to
// BatchMaxWait or Debounce) overlaps the work instead of adding to it. A
// batch is handed over only when the consumer asks for the next one, so
// at most one collected batch waits; offsets are still committed by the
// consumer, in order, after each batch is applied. kafka-go's Reader may
// be fetched from and committed to from different goroutines.
type batches struct {
	ch     chan []kafka.Message
	done   chan struct{}
	cancel context.CancelFunc
}

// fetchRetryWait is how long a consumer waits after a failed fetch.
const fetchRetryWait = 200 * time.Millisecond

// startBatches starts collecting batches of at most max messages, each
// closed maxWait after its first message. It stops when ctx ends or stop
// is called.
func startBatches(ctx context.Context, r *kafka.Reader, max int, maxWait time.Duration, log *slog.Logger, what string) *batches {
	ctx, cancel := context.WithCancel(ctx)
	b := &batches{ch: make(chan []kafka.Message), done: make(chan struct{}), cancel: cancel}
	go func() {
		defer close(b.done)
		for {
			msgs, err := fetchBatch(ctx, r, max, maxWait)
			if len(msgs) == 0 {
				if ctx.Err() != nil {
					return
				}
				log.Warn("fetching "+what, "err", err)
				if !retry.Sleep(ctx, fetchRetryWait) {
					return
				}
				continue
			}
			select {
			case b.ch <- msgs:
			case <-ctx.Done():
				return // not applied, not committed: the next owner reads it again
			}
		}
	}()
	return b
}

// next returns the next batch. With retryAfter > 0 it returns a nil batch
// when none arrives within retryAfter (the consumer then retries a pending
// commit). ok is false once ctx has ended.
func (b *batches) next(ctx context.Context, retryAfter time.Duration) (msgs []kafka.Message, ok bool) {
	var timeout <-chan time.Time
	if retryAfter > 0 {
		t := time.NewTimer(retryAfter)
		defer t.Stop()
		timeout = t.C
	}
	select {
	case msgs = <-b.ch:
		return msgs, true
	case <-timeout:
		return nil, true
	case <-ctx.Done():
		return nil, false
	}
}

// stop ends collecting and waits for the goroutine.
func (b *batches) stop() {
	b.cancel()
	<-b.done
}

// fetchBatch blocks for the first message, then collects more until max
// messages or maxWait.
func fetchBatch(ctx context.Context, r *kafka.Reader, max int, maxWait time.Duration) ([]kafka.Message, error) {
	first, err := r.FetchMessage(ctx)
	if err != nil {
		return nil, err
	}
	msgs := []kafka.Message{first}
	wctx, cancel := context.WithTimeout(ctx, maxWait)
	defer cancel()
	for len(msgs) < max {
		m, err := r.FetchMessage(wctx)
		if err != nil {
			break
		}
		msgs = append(msgs, m)
	}
	return msgs, nil
}
