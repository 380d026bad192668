package consumer

import (
	"context"
	"fmt"
	"log/slog"
	"sort"
	"time"

	"github.com/segmentio/kafka-go"
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
	opt ScoreOptions
	ref Refresher
	health
	lag *lagTracker
}

// NewScore returns a scoring consumer. Workers and ShutdownTimeout have no
// defaults here (config holds them): a zero is an error; a zero Debounce
// scores each fetch at once.
func NewScore(opt ScoreOptions, ref Refresher) (*Score, error) {
	if err := positive("score", "Workers", opt.Workers, "ShutdownTimeout", opt.ShutdownTimeout); err != nil {
		return nil, err
	}
	if opt.Debounce < 0 {
		return nil, fmt.Errorf("consumer: score: Debounce %v: want >= 0", opt.Debounce)
	}
	if opt.MaxUsers <= 0 {
		opt.MaxUsers = 5000
	}
	if opt.ChunkUsers <= 0 {
		opt.ChunkUsers = 64
	}
	if opt.TrendingEvery <= 0 {
		opt.TrendingEvery = 5 * time.Second
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
	return &Score{opt: opt, ref: ref, lag: newLagTracker(opt.Group, opt.Topic, opt.Metrics),
		health: health{role: "score", m: opt.Metrics, log: opt.Logger}}, nil
}

// Lag returns the per-partition lag of the refresh topic.
func (s *Score) Lag() map[int]PartitionLag { return s.lag.snapshot() }

// Run consumes until ctx is cancelled.
func (s *Score) Run(ctx context.Context) error {
	r := s.opt.Kafka.reader(s.opt.Topic, s.opt.Group, 2*s.opt.MaxUsers)
	defer s.opt.Kafka.closeReader(r, "kafka_group", s.opt.Group)
	procCtx, cancelProc := graceContext(ctx, s.opt.ShutdownTimeout)
	defer cancelProc()

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
		s.start()
		cm := &committer{group: s.opt.Group, m: s.opt.Metrics, log: s.opt.Logger, lag: s.lag}
		bt := startBatches(ctx, r, s.opt.MaxUsers, s.opt.Debounce, s.opt.Logger, "refresh requests")
		defer bt.stop()
		consume(ctx, procCtx, r, bt, cm, func(msgs []kafka.Message) error {
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
				return err
			}
			s.opt.Metrics.RefreshPending.Set(0)
			return nil
		})
		return nil
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
	err := s.retry(ctx, "rescoring", func() error {
		start := time.Now()
		if err := s.refreshOnce(ctx, users); err != nil {
			return err
		}
		s.opt.Metrics.RefreshBatches.Observe(time.Since(start).Seconds())
		return nil
	})
	if err != nil {
		return err
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
