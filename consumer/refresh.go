package consumer

import (
	"context"
	"log/slog"
	"sort"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/store"
)

// Refresher rescores users and writes their lists.
type Refresher interface {
	Refresh(ctx context.Context, users []string) ([]store.List, error)
	RefreshTrending(ctx context.Context) (store.List, error)
}

// ScoreOptions configures the scoring consumer.
type ScoreOptions struct {
	Kafka           Kafka
	Topic           string // refresh requests
	Group           string
	Debounce        time.Duration // window in which requests for one user are merged
	MaxUsers        int           // users per debounce window at most
	ChunkUsers      int           // users scored together in one store round trip
	Workers         int           // chunks scored concurrently
	TrendingEvery   time.Duration // how often the anonymous list is rewritten
	ShutdownTimeout time.Duration
	Now             func() time.Time
	Metrics         *Metrics
	Logger          *slog.Logger
}

// Score consumes refresh requests, merges them per user within a debounce
// window, rescores the users and commits the requests once their lists are
// written: a pending refresh survives a crash.
type Score struct {
	opt   ScoreOptions
	ref   Refresher
	ready atomic.Bool
	lag   *lagTracker
}

// NewScore returns a scoring consumer.
func NewScore(opt ScoreOptions, ref Refresher) *Score {
	if opt.Debounce <= 0 {
		opt.Debounce = 100 * time.Millisecond
	}
	if opt.MaxUsers <= 0 {
		opt.MaxUsers = 5000
	}
	if opt.ChunkUsers <= 0 {
		opt.ChunkUsers = 64
	}
	if opt.Workers <= 0 {
		opt.Workers = 8
	}
	if opt.TrendingEvery <= 0 {
		opt.TrendingEvery = 5 * time.Second
	}
	if opt.ShutdownTimeout <= 0 {
		opt.ShutdownTimeout = 15 * time.Second
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	opt.Metrics.initGroup(opt.Group)
	return &Score{opt: opt, ref: ref, lag: newLagTracker(opt.Group, opt.Topic, opt.Metrics)}
}

// Ready reports whether the last rescore went through.
func (s *Score) Ready() bool { return s.ready.Load() }

// Lag returns the per-partition lag of the refresh topic.
func (s *Score) Lag() map[int]PartitionLag { return s.lag.snapshot() }

// Run consumes until ctx is cancelled.
func (s *Score) Run(ctx context.Context) error {
	r := s.opt.Kafka.reader(s.opt.Topic, s.opt.Group, 2*s.opt.MaxUsers)
	defer r.Close()
	procCtx, cancelProc := context.WithCancel(context.WithoutCancel(ctx))
	defer cancelProc()
	go func() {
		<-ctx.Done()
		t := time.NewTimer(s.opt.ShutdownTimeout)
		defer t.Stop()
		select {
		case <-t.C:
			cancelProc()
		case <-procCtx.Done():
		}
	}()

	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error {
		t := time.NewTicker(s.opt.TrendingEvery)
		defer t.Stop()
		for {
			if _, err := s.ref.RefreshTrending(gctx); err != nil && gctx.Err() == nil {
				s.opt.Logger.Warn("refreshing trending list", "err", err)
			}
			select {
			case <-gctx.Done():
				return nil
			case <-t.C:
			}
		}
	})
	g.Go(func() error {
		s.ready.Store(true)
		cm := &committer{group: s.opt.Group, m: s.opt.Metrics, log: s.opt.Logger, lag: s.lag}
		bt := startBatches(ctx, r, s.opt.MaxUsers, s.opt.Debounce, s.opt.Logger, "refresh requests")
		defer bt.stop()
		for {
			msgs, ok := bt.next(ctx, cm.retryAfter())
			if !ok {
				return nil
			}
			if msgs == nil {
				cm.retry(procCtx, r)
				continue
			}
			reqs := make([]RefreshRequest, 0, len(msgs))
			for _, m := range msgs {
				req, err := DecodeRefresh(m.Value)
				if err != nil {
					s.opt.Logger.Warn("skipping refresh request", "err", err)
					continue
				}
				reqs = append(reqs, req)
			}
			s.opt.Metrics.RefreshPending.Set(float64(len(reqs)))
			if err := s.refresh(procCtx, reqs); err != nil {
				return nil
			}
			s.opt.Metrics.RefreshPending.Set(0)
			cm.commit(procCtx, r, msgs)
			if ctx.Err() != nil {
				return nil
			}
		}
	})
	return g.Wait()
}

// refresh rescores the requested users, retrying until it succeeds or ctx
// ends.
func (s *Score) refresh(ctx context.Context, reqs []RefreshRequest) error {
	seen := make(map[string]bool, len(reqs))
	users := make([]string, 0, len(reqs))
	for _, r := range reqs {
		if !seen[r.User] {
			seen[r.User] = true
			users = append(users, r.User)
		}
	}
	sort.Strings(users)
	backoff := 50 * time.Millisecond
	for {
		start := time.Now()
		err := s.refreshOnce(ctx, users)
		if err == nil {
			s.opt.Metrics.RefreshBatches.Observe(time.Since(start).Seconds())
			break
		}
		if ctx.Err() != nil {
			return ctx.Err()
		}
		if s.ready.Swap(false) {
			s.opt.Logger.Warn("rescoring failed; retrying until it succeeds", "err", err)
		}
		if !sleep(ctx, backoff) {
			return ctx.Err()
		}
		backoff = min(backoff*2, 2*time.Second)
	}
	if !s.ready.Swap(true) {
		s.opt.Logger.Info("rescoring recovered")
	}
	now := s.opt.Now()
	for _, r := range reqs {
		if r.TS > 0 {
			s.opt.Metrics.Freshness.Observe(now.Sub(time.UnixMilli(r.TS)).Seconds())
		}
	}
	s.opt.Metrics.ListsWritten.Add(float64(len(users)))
	return nil
}

// chunkSize is how many users one worker scores together: ChunkUsers, or
// fewer when that keeps every worker busy (a 60-user window in 64-user
// chunks would be scored by one worker while the others idle), but not
// below minChunkUsers (each chunk costs three store round trips).
func (s *Score) chunkSize(users int) int {
	c := (users + s.opt.Workers - 1) / s.opt.Workers
	return max(min(c, s.opt.ChunkUsers), min(minChunkUsers, s.opt.ChunkUsers))
}

const minChunkUsers = 4

func (s *Score) refreshOnce(ctx context.Context, users []string) error {
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(s.opt.Workers)
	size := s.chunkSize(len(users))
	for i := 0; i < len(users); i += size {
		chunk := users[i:min(i+size, len(users))]
		g.Go(func() error {
			_, err := s.ref.Refresh(gctx, chunk)
			return err
		})
	}
	return g.Wait()
}
