package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"strconv"
	"sync"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/logx"
)

var (
	//go:embed lua/common.lua
	commonLua string
	//go:embed lua/item.lua
	itemLua string
	//go:embed lua/trending.lua
	trendingLua string
)

// Options configures a Store; OptionsFromConfig gives the options of a
// configuration. New panics on a zero cap, weight table, half-life or
// epoch, or a negative NextWindow.
type Options struct {
	Prefix       string
	Weights      map[event.Type]float64 // implicit weight per event type
	HalfLife     time.Duration          // decay half-life in event time
	Epoch        time.Time              // weights are stored scaled to this instant
	UserItemsCap int                    // items kept per user vector
	UserLogCap   int                    // recent events kept per user
	ItemUsersCap int                    // recent users kept per item
	CoocCap      int                    // co-occurring items kept per item
	CoocHistory  int                    // earlier items a new item co-occurs with
	CoocFold     int                    // entries after which a co-occurrence or next-item row is folded (cooc.go)
	NextWindow   int                    // earlier distinct items an event's transitions come from (next.go); 0: none kept
	NextCap      int                    // names kept per next-item row when folded
	TrendingCap  int                    // items kept in the trending zset
	UserTTL      time.Duration          // inactivity expiry of user and item state; 0 = never
	UserCache    int                    // users whose state is kept in memory between batches, per source partition
	CopyIdle     time.Duration          // a user's copy no batch used for this long is dropped (TrimUserCopies); 0: never
	CoocMetrics  *CoocMetrics           // nil: counted but not registered
	UserMetrics  *UserMetrics           // nil: counted but not registered
	Attribution  AttributionOptions     // attribution at ingest (experiment.go)
	Now          func() time.Time       // wall clock for TTL renewal and the copies' idle time; nil = time.Now
	Logger       *slog.Logger           // nil: discard
}

// OptionsFromConfig returns the store options of a configuration: the key
// prefix, the model section and attribution.
func OptionsFromConfig(c config.Config) Options {
	w := c.Model.Weights
	return Options{
		Prefix:       c.Redis.KeyPrefix,
		Weights:      map[event.Type]float64{event.Browse: w.Browse, event.Click: w.Click, event.AddToCart: w.AddToCart, event.Purchase: w.Purchase},
		HalfLife:     c.Model.HalfLife,
		Epoch:        c.Model.EpochTime(),
		UserItemsCap: c.Model.UserItemsCap,
		UserLogCap:   c.Model.UserLogCap,
		ItemUsersCap: c.Model.ItemUsersCap,
		CoocCap:      c.Model.CoocCap,
		CoocHistory:  c.Model.CoocHistory,
		CoocFold:     c.Model.CoocFold,
		NextWindow:   c.Model.NextWindow,
		NextCap:      c.Model.NextCap,
		TrendingCap:  c.Model.TrendingCap,
		UserTTL:      c.Model.UserTTL,
		UserCache:    c.Ingest.UserCache,
		CopyIdle:     c.Ingest.UserCacheIdle,
		Attribution: AttributionOptions{
			Window:              c.Attribution.Window,
			NoListFallback:      !c.Attribution.ListFallback,
			ShownCap:            c.Attribution.ShownCap,
			RefreshOnImpression: c.Attribution.Discount > 0,
		},
	}
}

// check panics, naming the option, on a value the store cannot work with.
func (o *Options) check() {
	bad := func(name string, v any) {
		panic(fmt.Sprintf("store.New: Options.%s is %v; build the options with OptionsFromConfig", name, v))
	}
	if o.Weights == nil {
		bad("Weights", "nil")
	}
	if o.HalfLife <= 0 {
		bad("HalfLife", o.HalfLife)
	}
	if o.Epoch.IsZero() {
		bad("Epoch", "the zero time")
	}
	for _, c := range []struct {
		name string
		v    int
	}{
		{"UserItemsCap", o.UserItemsCap}, {"UserLogCap", o.UserLogCap}, {"ItemUsersCap", o.ItemUsersCap},
		{"CoocCap", o.CoocCap}, {"CoocHistory", o.CoocHistory}, {"CoocFold", o.CoocFold}, {"NextCap", o.NextCap},
		{"TrendingCap", o.TrendingCap}, {"Attribution.ShownCap", o.Attribution.ShownCap},
	} {
		if c.v <= 0 {
			bad(c.name, c.v)
		}
	}
	if o.NextWindow < 0 {
		bad("NextWindow", o.NextWindow)
	}
	if o.UserCache < 0 {
		bad("UserCache", o.UserCache)
	}
	if o.CopyIdle < 0 {
		bad("CopyIdle", o.CopyIdle)
	}
}

func (o *Options) setNilDefaults() {
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CoocMetrics == nil {
		o.CoocMetrics = NewCoocMetrics(nil)
	}
	if o.UserMetrics == nil {
		o.UserMetrics = NewUserMetrics(nil)
	}
}

// Store is recstream's Redis state: the fenced write path used by the ingest
// consumer and the reads used by the scorer.
type Store struct {
	rdb   redis.UniversalClient
	opt   Options
	keys  Keys
	item  *redis.Script
	trend *redis.Script

	warn *slog.Logger // Logger, rate-limited: warnings a hot key could repeat

	cacheMu   sync.Mutex
	caches    map[int32]*userCache // per source partition (usercache.go)
	heap      func() heapReading   // readHeap; tests replace it
	trimmedAt uint64               // the collection after which trimUserCopies last trimmed for memory

	failAfterUsers bool   // tests: simulate a crash between the phases
	foldHook       func() // tests: runs between a fold's read and its write
}

// New returns a Store on rdb. It does not take ownership of rdb. It panics
// when opt lacks a cap, the weights, the half-life or the epoch.
func New(rdb redis.UniversalClient, opt Options) *Store {
	opt.check()
	opt.setNilDefaults()
	return &Store{
		rdb:   rdb,
		opt:   opt,
		keys:  Keys{Prefix: opt.Prefix},
		warn:  slog.New(logx.RateLimit(opt.Logger.Handler(), 10*time.Second)),
		item:  redis.NewScript(commonLua + itemLua),
		trend: redis.NewScript(commonLua + trendingLua),
		heap:  readHeap,
	}
}

// Keys returns the key builder of this store.
func (s *Store) Keys() Keys { return s.keys }

// Client returns the Redis client.
func (s *Store) Client() redis.UniversalClient { return s.rdb }

// Options returns the effective options.
func (s *Store) Options() Options { return s.opt }

// LoadScripts loads the Lua scripts on every node (SCRIPT LOAD), so that
// EVALSHA finds them.
func (s *Store) LoadScripts(ctx context.Context) error {
	all := []*redis.Script{s.item, s.trend, guardedScript, ownerTrendingScript, experimentScript, coocFoldScript, forgetUserScript, forgetItemScript, forgetTrendingScript, catalogScript}
	load := func(ctx context.Context, c *redis.Client) error {
		for _, sc := range all {
			if err := sc.Load(ctx, c).Err(); err != nil {
				return fmt.Errorf("loading script: %w", err)
			}
		}
		return nil
	}
	if cc, ok := s.rdb.(*redis.ClusterClient); ok {
		return cc.ForEachShard(ctx, load)
	}
	for _, sc := range all {
		if err := sc.Load(ctx, s.rdb).Err(); err != nil {
			return fmt.Errorf("loading script: %w", err)
		}
	}
	return nil
}

// Ping checks that Redis answers.
func (s *Store) Ping(ctx context.Context) error { return s.rdb.Ping(ctx).Err() }

// Op is one valid event with its position in its source partition.
type Op struct {
	Offset int64
	User   string
	Item   string
	Type   event.Type
	TS     int64   // unix ms
	Value  float64 // the event's value (a purchase's, for attribution)
	// Shown is an impression's items, sources and variant (Type
	// event.Impression).
	Shown *event.Shown
}

// ApplyResult says what a batch did.
type ApplyResult struct {
	Users   map[string]int64 // user -> newest event ts of the batch
	Applied int              // events applied now
	Fenced  int              // events skipped because an earlier run applied them
	Lost    int              // fenced events no longer in the user log (co-occurrence not replayable)
	Erased  int              // events dropped because their user was erased after their time (Forget)
}

// Decay returns 2^((ts-epoch)/half-life), the factor a weight observed at ts
// is stored with.
func (s *Store) Decay(ts int64) float64 {
	return math.Exp2(float64(ts-s.opt.Epoch.UnixMilli()) / float64(s.opt.HalfLife.Milliseconds()))
}

func fmtFloat(f float64) string { return strconv.FormatFloat(f, 'g', 17, 64) }

// Apply applies one partition's batch (ops in ascending offset order). It is
// safe to call again with any overlapping batch: every key group skips the
// offsets it has already applied. It writes each changed user with one
// guarded write (reading first the users it holds no copy of), then one
// script per item touched and one for trending, and folds the
// co-occurrence rows it made long (two more round trips, when there are
// any).
func (s *Store) Apply(ctx context.Context, partition int32, ops []Op) (ApplyResult, error) {
	w := NewItemWork(partition)
	res, err := s.ApplyUsers(ctx, partition, ops, w)
	if err != nil {
		return res, err
	}
	if s.failAfterUsers {
		s.failAfterUsers = false
		return res, errors.New("applying item state: simulated crash")
	}
	return res, s.ApplyItems(ctx, w)
}

// ApplyUsers applies the user half of one partition's batch (ops in the
// order consumed, fenced per user) and adds its item half to w, which
// ApplyItems writes. It is safe to call again with any overlapping batch,
// and a batch may hold offsets again (a consumer that restarted a
// partition after a rebalance delivers it again from the committed
// offset, possibly into the batch it is collecting): each offset's item
// half is taken once. Each user's events are applied in the process to
// the copy of its keys kept for the partition (usercache.go), or read
// first, and each changed user is written with one guarded write; calls
// for one partition apply one at a time.
func (s *Store) ApplyUsers(ctx context.Context, partition int32, ops []Op, w *ItemWork) (ApplyResult, error) {
	res := ApplyResult{Users: make(map[string]int64)}
	if len(ops) == 0 {
		return res, nil
	}
	if w.partition != partition {
		return res, fmt.Errorf("applying user state: item work of partition %d given for partition %d", w.partition, partition)
	}
	users, byUser := groupByUser(ops, &res, s.opt.Attribution.RefreshOnImpression)
	replies, err := s.applyUserHalf(ctx, s.userCacheOf(partition), partition, ops, users, byUser)
	if err != nil {
		return res, fmt.Errorf("applying user state: %w", err)
	}
	// The item half and the experiment counters, from the users' answers:
	// read first, added to w (in offset order) only when every answer was
	// read.
	answers := make([]userAnswer, len(ops))
	for k, u := range users {
		kept, err := s.readUserAnswer(partition, ops, byUser[u], replies[k], answers, &res)
		if err != nil {
			return res, fmt.Errorf("applying user state: %w", err)
		}
		if !kept {
			delete(res.Users, u) // every event predates the user's erasure
		}
	}
	s.addItemHalf(w, ops, answers)
	return res, nil
}

// groupByUser returns the users of ops in order of first appearance and
// the indexes of each user's ops; it records each user's newest event
// time in res (of impressions only when they change lists, with
// impressionRefresh).
func groupByUser(ops []Op, res *ApplyResult, impressionRefresh bool) (users []string, byUser map[string][]int) {
	byUser = make(map[string][]int)
	for i, op := range ops {
		if _, ok := byUser[op.User]; !ok {
			users = append(users, op.User)
		}
		byUser[op.User] = append(byUser[op.User], i)
		if op.Type == event.Impression && !impressionRefresh {
			continue // an impression changes no list
		}
		if op.TS > res.Users[op.User] {
			res.Users[op.User] = op.TS
		}
	}
	return users, byUser
}

// userAnswer is what the item half needs of one event: whether it made
// its item new for the user, with the user's earlier items then, the
// earlier items its transitions come from (next.go), or whether it was
// dropped (its user erased after its time); and what it adds to the
// experiment counters (experiment.go).
type userAnswer struct {
	isNew   bool
	hist    []string
	prev    []string
	dropped bool
	rec     string
}

// readUserAnswer reads one user's answer (a code per event, the user log
// as it was before, the attribution decisions made now and, when an event
// was fenced, the attribution log) into answers at the events' indexes
// idx, counting the codes in res; kept is false when every event of the
// user was dropped.
func (s *Store) readUserAnswer(partition int32, ops []Op, idx []int, reply userReply, answers []userAnswer, res *ApplyResult) (kept bool, err error) {
	if len(reply.codes) != len(idx) || len(reply.recs) != len(idx) {
		return false, fmt.Errorf("%d codes for %d events", len(reply.codes), len(idx))
	}
	log := newUserLog(reply.log)
	var pending []string // items of the events applied now, oldest first
	for j, i := range idx {
		op := ops[i]
		code := reply.codes[j]
		var a userAnswer
		switch code {
		case codeErased:
			res.Erased++
			answers[i] = userAnswer{dropped: true}
			continue
		case codeApplied, codeAppliedNew:
			res.Applied++
			a.rec = reply.recs[j]
			if op.Type == event.Impression {
				break
			}
			if code == codeAppliedNew {
				a.isNew, a.hist = true, log.history(pending, 0, op.Item, s.opt.CoocHistory, s.opt.UserLogCap)
			}
			a.prev = s.nextWindow(a.hist, a.isNew, func(m int) []string {
				return log.history(pending, 0, op.Item, m, s.opt.UserLogCap)
			})
			pending = append(pending, op.Item)
		case codeFenced:
			res.Fenced++
			if s.opt.Attribution.Window > 0 {
				a.rec = findRec(reply.attlog, op.Offset, partition)
			}
			if op.Type == event.Impression {
				break
			}
			// Fenced events come first (offsets ascend): pending is empty.
			if at := log.find(op.Offset, partition); at < 0 {
				res.Lost++
			} else {
				if log.isNew(at) {
					a.isNew, a.hist = true, log.history(nil, at+1, op.Item, s.opt.CoocHistory, s.opt.UserLogCap)
				}
				a.prev = s.nextWindow(a.hist, a.isNew, func(m int) []string {
					return log.history(nil, at+1, op.Item, m, s.opt.UserLogCap)
				})
			}
		default:
			return false, fmt.Errorf("unknown code %d", code)
		}
		kept = true
		answers[i] = a
	}
	return kept, nil
}

// addItemHalf adds the events to w in offset order, each offset once (a
// retried batch, or one delivered again within this one, is already in
// w), with what they add to the experiment counters; a dropped event and
// an impression only count.
func (s *Store) addItemHalf(w *ItemWork, ops []Op, answers []userAnswer) {
	for i, op := range ops {
		if op.Offset <= w.last {
			continue
		}
		w.last = op.Offset
		if adds := expAdds(op, answers[i].rec); adds != nil {
			w.exp = append(w.exp, expEvent{off: op.Offset, adds: adds})
		}
		if a := answers[i]; !a.dropped && op.Type != event.Impression {
			d := s.Decay(op.TS)
			w.add(op, s.opt.Weights[op.Type]*d, d, a.isNew, a.hist, a.prev)
		} else {
			w.count()
		}
	}
}

// runScripts sends n script calls in one pipeline. When Redis has lost the
// scripts (restart, failover) it loads them and sends the whole pipeline
// again: the fences make the repetition harmless.
func (s *Store) runScripts(ctx context.Context, _ *redis.Script, n int, build func(redis.Pipeliner, int) *redis.Cmd) ([]*redis.Cmd, error) {
	for attempt := 0; ; attempt++ {
		pipe := s.rdb.Pipeline()
		cmds := make([]*redis.Cmd, n)
		for k := 0; k < n; k++ {
			cmds[k] = build(pipe, k)
		}
		_, err := pipe.Exec(ctx)
		if err != nil && attempt == 0 && isNoScript(err, cmds) {
			if lerr := s.LoadScripts(ctx); lerr != nil {
				return nil, lerr
			}
			continue
		}
		if err != nil {
			return nil, err
		}
		return cmds, nil
	}
}

// evalRetry runs one script as runScripts runs many: loading the scripts
// once if Redis lost them.
func (s *Store) evalRetry(ctx context.Context, sc *redis.Script, keys []string, args ...any) (any, error) {
	cmds, err := s.runScripts(ctx, sc, 1, func(pipe redis.Pipeliner, _ int) *redis.Cmd {
		return sc.EvalSha(ctx, pipe, keys, args...)
	})
	if err != nil {
		return nil, err
	}
	return cmds[0].Result()
}

func isNoScript(err error, cmds []*redis.Cmd) bool {
	if redis.HasErrorPrefix(err, "NOSCRIPT") {
		return true
	}
	for _, c := range cmds {
		if c.Err() != nil && redis.HasErrorPrefix(c.Err(), "NOSCRIPT") {
			return true
		}
	}
	return false
}

func toStrings(v any) []string {
	arr, _ := v.([]any)
	out := make([]string, 0, len(arr))
	for _, x := range arr {
		if s, ok := x.(string); ok {
			out = append(out, s)
		}
	}
	return out
}
