package eval

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// ReplayConfig configures a Replay.
type ReplayConfig struct {
	// Redis is the server the state lives in. A replay deletes every key
	// under Store.Prefix first, and nothing else.
	Redis redis.UniversalClient
	// Store are the production store options (store.OptionsFromConfig of a
	// config). Store.Prefix must not be empty. A zero Store.Epoch is set to
	// the first training timestamp, so that the forward-decay factors stay
	// in range whatever the age of the log.
	Store store.Options
	// Partitions is the number of simulated source partitions; users are
	// assigned to them by a hash of the user id, as a keyed producer does
	// (0 means 4).
	Partitions int
	// BatchSize is the number of consecutive events (in time order) that
	// form one micro-batch; each batch is applied as one store.Apply per
	// partition (0 means 1000, the default ingest.batch_max_events).
	BatchSize int
	// Types maps an interaction type to the event type it is applied as;
	// types not in the map are parsed as event type names. MovieLens
	// ratings load as "click", so they all weigh the same.
	Types map[string]event.Type
	// EASE, when not nil, is refreshed from the live user vectors after
	// each replay (and every EASERefresh observed events) for the scorers'
	// "ease" source.
	EASE *scorer.EASE
	// EASERefresh is how many observed events pass between EASE refreshes
	// (0 means 5000).
	EASERefresh int
	// Ingest, when set, replaces the direct store.Apply replay of Fit: it
	// must bring the events (time order) into the state under Store.Prefix
	// with the given epoch, e.g. through a broker and the real processor.
	// Observe is then not supported.
	Ingest func(ctx context.Context, prefix string, epoch time.Time, events []Interaction) error
}

// Replay is recstream's ingest path run over a log: it applies the
// interactions in time order to Redis through store.Store.Apply, in
// micro-batches per simulated partition with increasing offsets, as the
// ingest consumer does. Several Incremental models may share one Replay:
// a Fit on the same training slice replays only once.
type Replay struct {
	cfg     ReplayConfig
	mu      sync.Mutex
	st      *store.Store
	offs    []int64
	key     replayKey
	dirty   bool // events were observed after the last full replay
	version int  // bumped on every change of the state
	n       int
}

type replayKey struct {
	n           int
	first, last *Interaction
}

// NewReplay returns a replay; nothing is touched before the first Fit.
func NewReplay(cfg ReplayConfig) *Replay {
	if cfg.Partitions <= 0 {
		cfg.Partitions = 4
	}
	if cfg.BatchSize <= 0 {
		cfg.BatchSize = 1000
	}
	if cfg.EASERefresh <= 0 {
		cfg.EASERefresh = 5000
	}
	return &Replay{cfg: cfg}
}

// Store returns the store of the last replay (nil before).
func (r *Replay) Store() *store.Store {
	r.mu.Lock()
	defer r.mu.Unlock()
	return r.st
}

// ErrNoPrefix is returned when the store has no key prefix: eval deletes
// every key under its prefix and will not touch a whole server.
var ErrNoPrefix = errors.New("eval: incremental model needs a key prefix")

// fit replays train unless the state already holds exactly train.
func (r *Replay) fit(ctx context.Context, train []Interaction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	key := replayKey{n: len(train)}
	if len(train) > 0 {
		key.first, key.last = &train[0], &train[len(train)-1]
	}
	if r.st != nil && !r.dirty && r.key == key {
		return nil
	}
	if r.cfg.Store.Prefix == "" {
		return ErrNoPrefix
	}
	if r.cfg.Redis == nil {
		return errors.New("eval: incremental model needs a Redis client")
	}
	if err := DeletePrefix(ctx, r.cfg.Redis, r.cfg.Store.Prefix); err != nil {
		return err
	}
	so := r.cfg.Store
	if so.Epoch.IsZero() {
		var first int64
		for i, it := range train {
			if i == 0 || it.TS < first {
				first = it.TS
			}
		}
		so.Epoch = time.UnixMilli(first).UTC()
	}
	r.st = store.New(r.cfg.Redis, so)
	if err := r.st.LoadScripts(ctx); err != nil {
		return err
	}
	r.offs = make([]int64, r.cfg.Partitions)
	r.key, r.dirty, r.n = key, false, 0
	r.version++
	if r.cfg.Ingest != nil {
		if err := r.cfg.Ingest(ctx, so.Prefix, so.Epoch, sortedCopy(train)); err != nil {
			r.st = nil
			return err
		}
		return r.refreshEASE(ctx)
	}
	if err := r.apply(ctx, sortedCopy(train)); err != nil {
		r.st = nil
		return err
	}
	return r.refreshEASE(ctx)
}

func (r *Replay) refreshEASE(ctx context.Context) error {
	if r.cfg.EASE == nil {
		return nil
	}
	if err := r.cfg.EASE.Refresh(ctx, r.st); err != nil {
		return fmt.Errorf("refreshing ease: %w", err)
	}
	return nil
}

// observe applies one event as a batch of one.
func (r *Replay) observe(ctx context.Context, it Interaction) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return errors.New("eval: observe before fit")
	}
	if r.cfg.Ingest != nil {
		return errors.New("eval: a replay with its own Ingest cannot observe single events")
	}
	r.dirty = true
	r.version++
	if err := r.apply(ctx, []Interaction{it}); err != nil {
		return err
	}
	r.n++
	if r.cfg.EASE != nil && r.n%r.cfg.EASERefresh == 0 {
		return r.refreshEASE(ctx)
	}
	return nil
}

// impression applies an impression of items to user as a batch of one.
func (r *Replay) impression(ctx context.Context, user string, items []string, ts int64) error {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return errors.New("eval: impression before fit")
	}
	r.dirty = true
	r.version++
	p := r.Partition(user)
	op := store.Op{Offset: r.offs[p], User: user, Type: event.Impression, TS: ts, Shown: &event.Shown{Items: items}}
	r.offs[p]++
	_, err := r.st.Apply(ctx, p, []store.Op{op})
	return err
}

// Partition returns the simulated partition of a user.
func (r *Replay) Partition(user string) int32 {
	h := fnv.New32a()
	h.Write([]byte(user))
	return int32(h.Sum32() % uint32(r.cfg.Partitions))
}

func (r *Replay) eventType(t string) (event.Type, error) {
	if et, ok := r.cfg.Types[t]; ok {
		return et, nil
	}
	return event.ParseType(t)
}

// apply replays events (time order) in micro-batches of BatchSize, one
// store.Apply per partition and batch.
func (r *Replay) apply(ctx context.Context, events []Interaction) error {
	byPart := make([][]store.Op, r.cfg.Partitions)
	for start := 0; start < len(events); start += r.cfg.BatchSize {
		end := min(start+r.cfg.BatchSize, len(events))
		for p := range byPart {
			byPart[p] = byPart[p][:0]
		}
		for _, it := range events[start:end] {
			t, err := r.eventType(it.Type)
			if err != nil {
				return fmt.Errorf("eval: interaction of %s on %s: %w", it.User, it.Item, err)
			}
			p := r.Partition(it.User)
			byPart[p] = append(byPart[p], store.Op{Offset: r.offs[p], User: it.User, Item: it.Item, Type: t, TS: it.TS})
			r.offs[p]++
		}
		for p, ops := range byPart {
			if len(ops) == 0 {
				continue
			}
			if _, err := r.st.Apply(ctx, int32(p), ops); err != nil {
				return err
			}
		}
		if err := ctx.Err(); err != nil {
			return err
		}
	}
	return nil
}

// Incremental evaluates recstream's production path: Fit (and Observe)
// replay the interactions into Redis through a Replay, and Score and TopK
// ask scorer.Scorer for the user's blended candidates, as the score role
// does before it writes a list. Which sources it blends is the scorer
// options' choice (weights).
type Incremental struct {
	name   string
	replay *Replay
	opt    scorer.Options

	mu      sync.Mutex
	sc      *scorer.Scorer
	scVer   int
	user    string
	us      *scorer.UserScores
	usVer   int
	usValid bool
	easeVer int
}

var _ Learner = (*Incremental)(nil)

// NewIncremental returns a model named name scoring with opt over the state
// of replay. When the replay has an EASE model and opt has none, the
// replay's is used.
func NewIncremental(name string, replay *Replay, opt scorer.Options) *Incremental {
	if opt.EASE == nil {
		opt.EASE = replay.cfg.EASE
	}
	// A scorer is made anew whenever the replayed state changes (every
	// Observe, every Fit), so the reads it reuses (trending, degrees, rows,
	// vectors) are of the current state for its whole life.
	opt.TrendingRefresh = 24 * time.Hour
	opt.DegreeTTL = 24 * time.Hour
	opt.NeighbourTTL = 24 * time.Hour
	return &Incremental{name: name, replay: replay, opt: opt}
}

// Name implements Model.
func (m *Incremental) Name() string { return m.name }

// Replay returns the model's replay.
func (m *Incremental) Replay() *Replay { return m.replay }

// Fit implements Model.
func (m *Incremental) Fit(ctx context.Context, train []Interaction) error {
	return m.replay.fit(ctx, train)
}

// Observe implements Learner.
func (m *Incremental) Observe(ctx context.Context, it Interaction) error {
	return m.replay.observe(ctx, it)
}

// ObserveImpression implements Impressioner: the replay's store records
// the impression (with attribution on), and the scorer discounts what was
// shown when its options say so.
func (m *Incremental) ObserveImpression(ctx context.Context, user string, items []string, ts int64) error {
	return m.replay.impression(ctx, user, items, ts)
}

// scores returns the scorer's candidates for user, cached for the last user
// while the state does not change.
func (m *Incremental) scores(ctx context.Context, user string) (*scorer.UserScores, error) {
	st, ver, err := m.replay.current()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if m.usValid && m.user == user && m.usVer == ver {
		return m.us, nil
	}
	if err := m.refreshScorer(ctx, st, ver); err != nil {
		return nil, err
	}
	us, err := m.sc.Score(ctx, []string{user})
	if err != nil {
		return nil, err
	}
	m.user, m.us, m.usVer, m.usValid = user, &us[0], ver, true
	return m.us, nil
}

// scorer returns the scorer of the current state.
func (m *Incremental) scorer(ctx context.Context) (*scorer.Scorer, error) {
	st, ver, err := m.replay.current()
	if err != nil {
		return nil, err
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.refreshScorer(ctx, st, ver); err != nil {
		return nil, err
	}
	return m.sc, nil
}

// current returns the replay's store and its version.
func (r *Replay) current() (*store.Store, int, error) {
	r.mu.Lock()
	defer r.mu.Unlock()
	if r.st == nil {
		return nil, 0, errors.New("eval: incremental model used before Fit")
	}
	return r.st, r.version, nil
}

// refreshScorer makes the scorer anew when the state changed (m.mu held).
func (m *Incremental) refreshScorer(ctx context.Context, st *store.Store, ver int) error {
	if m.sc == nil || m.scVer != ver {
		if m.opt.EASE != nil && m.opt.EASE != m.replay.cfg.EASE && m.easeVer != ver {
			// A model with its own EASE (other settings than the
			// replay's) refreshes it from the current state.
			if err := m.opt.EASE.Refresh(ctx, st); err != nil {
				return err
			}
			m.easeVer = ver
		}
		opt := m.opt
		if opt.ImpressionDiscount > 0 {
			opt.Shown = st.ShownCounts
		}
		m.sc = scorer.New(st, opt)
		m.scVer = ver
	}
	return nil
}

// Score implements Model: the candidates ranked for the user by
// scorer.Scorer.Rank, the path of the re-ranking API
// (POST /api/v1/users/{id}/rank); -Inf for an item with no score from any
// source (not even the popular prior).
func (m *Incremental) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	sc, err := m.scorer(ctx)
	if err != nil {
		return nil, err
	}
	ranked, err := sc.Rank(ctx, user, candidates)
	if err != nil {
		return nil, err
	}
	score := make(map[string]float64, len(ranked))
	for _, r := range ranked {
		if r.Score > 0 {
			score[r.Item] = r.Score
		}
	}
	out := make([]float64, len(candidates))
	for i, c := range candidates {
		if x, ok := score[c]; ok {
			out[i] = x
		} else {
			out[i] = math.Inf(-1)
		}
	}
	return out, nil
}

// TopK implements Model: the best k candidates with a positive blended
// score, skipping exclude and the user's purchases (as the scorer's list
// does).
func (m *Incremental) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	us, err := m.scores(ctx, user)
	if err != nil {
		return nil, err
	}
	ids := make([]string, 0, len(us.Candidates()))
	scores := make([]float64, 0, len(us.Candidates()))
	for _, x := range us.Candidates() {
		id := x.Item
		if us.Profile.Purchased[id] {
			continue
		}
		ids = append(ids, id)
		scores = append(scores, x.Score)
	}
	return topK(ids, scores, k, exclude, true), nil
}

// DeletePrefix deletes every key that starts with prefix (SCAN and UNLINK,
// on every master of a Cluster). It refuses an empty prefix.
func DeletePrefix(ctx context.Context, rdb redis.UniversalClient, prefix string) error {
	if prefix == "" {
		return ErrNoPrefix
	}
	del := func(ctx context.Context, c redis.Cmdable) error {
		var cursor uint64
		for {
			keys, next, err := c.Scan(ctx, cursor, escapeGlob(prefix)+"*", 1000).Result()
			if err != nil {
				return fmt.Errorf("eval: clearing %q: %w", prefix, err)
			}
			if len(keys) > 0 {
				pipe := c.Pipeline()
				for _, k := range keys {
					pipe.Unlink(ctx, k)
				}
				if _, err := pipe.Exec(ctx); err != nil {
					return fmt.Errorf("eval: clearing %q: %w", prefix, err)
				}
			}
			if next == 0 {
				return nil
			}
			cursor = next
		}
	}
	if cc, ok := rdb.(*redis.ClusterClient); ok {
		return cc.ForEachMaster(ctx, func(ctx context.Context, c *redis.Client) error { return del(ctx, c) })
	}
	return del(ctx, rdb)
}

func escapeGlob(s string) string {
	out := make([]byte, 0, len(s))
	for i := 0; i < len(s); i++ {
		switch s[i] {
		case '*', '?', '[', ']', '\\':
			out = append(out, '\\')
		}
		out = append(out, s[i])
	}
	return string(out)
}
