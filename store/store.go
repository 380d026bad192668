package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"log/slog"
	"math"
	"sort"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/logx"
)

var (
	//go:embed lua/common.lua
	commonLua string
	//go:embed lua/user.lua
	userLua string
	//go:embed lua/item.lua
	itemLua string
	//go:embed lua/trending.lua
	trendingLua string
)

// Options configures a Store. Zero caps take the documented defaults.
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
	CoocFold     int                    // entries after which a co-occurrence row is folded (cooc.go)
	TrendingCap  int                    // items kept in the trending zset
	UserTTL      time.Duration          // inactivity expiry of user and item state; 0 = never
	CoocMetrics  *CoocMetrics           // nil: counted but not registered
	Now          func() time.Time       // wall clock for TTL renewal; nil = time.Now
	Logger       *slog.Logger
}

// DefaultWeights are the implicit weights per event type.
func DefaultWeights() map[event.Type]float64 {
	return map[event.Type]float64{event.Browse: 1, event.Click: 2, event.AddToCart: 4, event.Purchase: 8}
}

func (o *Options) setDefaults() {
	if o.Weights == nil {
		o.Weights = DefaultWeights()
	}
	if o.HalfLife <= 0 {
		o.HalfLife = 14 * 24 * time.Hour
	}
	if o.Epoch.IsZero() {
		o.Epoch = time.Date(2024, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	def := func(v *int, d int) {
		if *v <= 0 {
			*v = d
		}
	}
	def(&o.UserItemsCap, 200)
	def(&o.UserLogCap, 64)
	def(&o.ItemUsersCap, 200)
	def(&o.CoocCap, 200)
	def(&o.CoocHistory, 20)
	def(&o.CoocFold, 32)
	def(&o.TrendingCap, 10000)
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Now == nil {
		o.Now = time.Now
	}
	if o.CoocMetrics == nil {
		o.CoocMetrics = NewCoocMetrics(nil)
	}
}

// Store is recstream's Redis state: the fenced write path used by the ingest
// consumer and the reads used by the scorer.
type Store struct {
	rdb   redis.UniversalClient
	opt   Options
	keys  Keys
	user  *redis.Script
	item  *redis.Script
	trend *redis.Script

	warn *slog.Logger // Logger, rate-limited: warnings a hot key could repeat

	failAfterUsers bool   // tests: simulate a crash between the phases
	foldHook       func() // tests: runs between a fold's read and its write
}

// New returns a Store on rdb. It does not take ownership of rdb.
func New(rdb redis.UniversalClient, opt Options) *Store {
	opt.setDefaults()
	return &Store{
		rdb:   rdb,
		opt:   opt,
		keys:  Keys{Prefix: opt.Prefix},
		warn:  slog.New(logx.RateLimit(opt.Logger.Handler(), 10*time.Second)),
		user:  redis.NewScript(commonLua + userLua),
		item:  redis.NewScript(itemLua),
		trend: redis.NewScript(commonLua + trendingLua),
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
	all := []*redis.Script{s.user, s.item, s.trend, coocFoldScript, forgetUserScript, forgetItemScript, forgetTrendingScript}
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
	TS     int64 // unix ms
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

type contrib struct {
	off    int64
	user   string
	ts     int64
	weight float64
	hasW   bool
	isNew  bool
	decay  float64
	co     []string
}

// Apply applies one partition's batch (ops in ascending offset order). It is
// safe to call again with any overlapping batch: every key group skips the
// offsets it has already applied. It issues one script per user, one per item
// touched and one for trending, in two pipelined round trips, and folds the
// co-occurrence rows it made long (two more, when there are any).
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

// ItemWork is the item and trending half of one partition's applied
// batches: what the user scripts answered, summed per item and written by
// ApplyItems. A consumer may collect several batches in one ItemWork and
// write them together (ingest.item_window): fewer, larger item scripts.
// Offsets it already holds are not added again, so a batch retried after a
// failed ApplyUsers is counted once.
type ItemWork struct {
	partition int32
	items     map[string][]contrib
	order     []string
	trend     []trendOp
	events    int
	last      int64 // highest offset added
	first     time.Time
}

type trendOp struct {
	off    int64
	item   string
	weight float64
}

// NewItemWork returns an empty ItemWork for partition.
func NewItemWork(partition int32) *ItemWork {
	return &ItemWork{partition: partition, items: make(map[string][]contrib), last: -1}
}

// Events is the number of events whose item work w holds.
func (w *ItemWork) Events() int { return w.events }

// Since is when w got its first event since it was last written (zero
// when empty).
func (w *ItemWork) Since() time.Time { return w.first }

func (w *ItemWork) add(item string, c contrib) {
	if _, ok := w.items[item]; !ok {
		w.order = append(w.order, item)
	}
	w.items[item] = append(w.items[item], c)
}

func (w *ItemWork) reset() {
	clear(w.items)
	w.order = w.order[:0]
	w.trend = w.trend[:0]
	w.events = 0
	w.first = time.Time{}
}

// ApplyUsers applies the user half of one partition's batch (ops in
// ascending offset order, fenced per user) and adds its item half to w,
// which ApplyItems writes. It is safe to call again with any overlapping
// batch.
func (s *Store) ApplyUsers(ctx context.Context, partition int32, ops []Op, w *ItemWork) (ApplyResult, error) {
	res := ApplyResult{Users: make(map[string]int64)}
	if len(ops) == 0 {
		return res, nil
	}
	if w.partition != partition {
		return res, fmt.Errorf("applying user state: item work of partition %d given for partition %d", w.partition, partition)
	}
	p := strconv.Itoa(int(partition))
	purchase := event.Purchase.String()

	byUser := make(map[string][]int)
	var users []string
	for i, op := range ops {
		if _, ok := byUser[op.User]; !ok {
			users = append(users, op.User)
		}
		byUser[op.User] = append(byUser[op.User], i)
		if op.TS > res.Users[op.User] {
			res.Users[op.User] = op.TS
		}
	}
	ttl := strconv.FormatInt(int64(s.opt.UserTTL/time.Second), 10)
	now := strconv.FormatInt(s.opt.Now().Unix(), 10) // TTL renewal, see lua/user.lua
	cmds, err := s.runScripts(ctx, s.user, len(users), func(pipe redis.Pipeliner, k int) *redis.Cmd {
		u := users[k]
		idx := byUser[u]
		args := make([]any, 0, 8+5*len(idx))
		args = append(args, p, s.opt.UserItemsCap, s.opt.UserLogCap, s.opt.CoocHistory, ttl, purchase, now, len(idx))
		for _, i := range idx {
			op := ops[i]
			args = append(args, op.Offset, op.Item, op.Type.String(), op.TS, fmtFloat(s.opt.Weights[op.Type]*s.Decay(op.TS)))
		}
		return s.user.EvalSha(ctx, pipe, []string{s.keys.UserWeights(u), s.keys.UserLog(u), s.keys.UserMeta(u), s.keys.UserPurchased(u)}, args...)
	})
	if err != nil {
		return res, fmt.Errorf("applying user state: %w", err)
	}

	// The item half, from the user scripts' answers: collected first and
	// added to w only when every answer was read.
	type itemContrib struct {
		item string
		c    contrib
	}
	var adds []itemContrib
	kept := make(map[string]bool, len(users))
	dropped := make(map[int]bool)
	for k, u := range users {
		rows, err := cmds[k].Slice()
		if err != nil {
			return res, fmt.Errorf("applying user state: %w", err)
		}
		idx := byUser[u]
		if len(rows) != len(idx) {
			return res, fmt.Errorf("applying user state: script answered %d rows for %d events", len(rows), len(idx))
		}
		for j, i := range idx {
			op := ops[i]
			row, _ := rows[j].([]any)
			if len(row) != 3 {
				return res, errors.New("applying user state: malformed script answer")
			}
			status, _ := row[0].(int64)
			isNew, _ := row[1].(int64)
			hist := toStrings(row[2])
			if status == -2 {
				res.Erased++
				dropped[i] = true
				continue
			}
			kept[u] = true
			switch status {
			case 1:
				res.Applied++
			case 0:
				res.Fenced++
			default:
				res.Fenced++
				res.Lost++
			}
			if op.Offset <= w.last {
				continue // already in w (a retried batch)
			}
			d := s.Decay(op.TS)
			adds = append(adds, itemContrib{op.Item, contrib{off: op.Offset, user: u, ts: op.TS, weight: s.opt.Weights[op.Type] * d, hasW: true, isNew: isNew == 1, decay: d, co: hist}})
			for _, h := range hist {
				adds = append(adds, itemContrib{h, contrib{off: op.Offset, ts: op.TS, decay: d, co: []string{op.Item}}})
			}
		}
	}
	for _, u := range users {
		if !kept[u] {
			delete(res.Users, u) // every event predates the user's erasure
		}
	}
	for _, a := range adds {
		w.add(a.item, a.c)
	}
	n := 0
	for i, op := range ops {
		if op.Offset > w.last && !dropped[i] {
			w.trend = append(w.trend, trendOp{off: op.Offset, item: op.Item, weight: s.opt.Weights[op.Type] * s.Decay(op.TS)})
		}
		if op.Offset > w.last {
			n++
		}
	}
	if n > 0 && w.events == 0 {
		w.first = time.Now()
	}
	w.events += n
	w.last = max(w.last, ops[len(ops)-1].Offset)
	return res, nil
}

// ApplyItems writes w: one script per item and one for trending, in one
// pipelined round trip (a second for items whose fence lay inside w's
// offsets), then folds the co-occurrence rows it made long. On success w
// is empty again; on failure it is kept, and calling ApplyItems again is
// safe: every item and trending skip the offsets they already applied.
func (s *Store) ApplyItems(ctx context.Context, w *ItemWork) error {
	if len(w.order) == 0 && len(w.trend) == 0 {
		w.reset()
		return nil
	}
	p := strconv.Itoa(int(w.partition))
	ttl := strconv.FormatInt(int64(s.opt.UserTTL/time.Second), 10)
	now := strconv.FormatInt(s.opt.Now().Unix(), 10)
	for _, it := range w.order {
		cs := w.items[it]
		sort.SliceStable(cs, func(a, b int) bool { return cs[a].off < cs[b].off })
	}
	// One job per item, then trending; a job answers a fence inside its
	// offsets, and is sent again with the sums after it.
	nItems := len(w.order)
	jobs := nItems
	if len(w.trend) > 0 {
		jobs++
	}
	build := func(pipe redis.Pipeliner, k int, after int64) *redis.Cmd {
		if k == nItems {
			return s.trend.EvalSha(ctx, pipe, []string{s.keys.Trending(), s.keys.TrendingFence()}, s.sumTrending(p, w.trend, after)...)
		}
		it := w.order[k]
		return s.item.EvalSha(ctx, pipe, []string{s.keys.ItemUsers(it), s.keys.ItemCooc(it), s.keys.ItemMeta(it)}, s.sumItem(p, ttl, now, w.items[it], after)...)
	}
	rowLen := make(map[int]int64, nItems)
	todo := make([]int, jobs)
	after := make([]int64, jobs)
	for k := range todo {
		todo[k] = k
		after[k] = -1
	}
	for len(todo) > 0 {
		cmds, err := s.runScripts(ctx, s.item, len(todo), func(pipe redis.Pipeliner, k int) *redis.Cmd {
			return build(pipe, todo[k], after[todo[k]])
		})
		if err != nil {
			return fmt.Errorf("applying item state: %w", err)
		}
		var again []int
		for k, c := range cmds {
			status, val, err := fencedAnswer(c)
			if err != nil {
				return fmt.Errorf("applying item state: %w", err)
			}
			switch status {
			case 1:
				rowLen[todo[k]] = val
			case 2:
				// The fence only grows, so this ends.
				again = append(again, todo[k])
				after[todo[k]] = val
			}
		}
		todo = again
	}
	// Rows whose lists this made long are folded now (cooc.go).
	var fold []string
	for k, it := range w.order {
		if rowLen[k] > int64(s.opt.CoocFold) {
			fold = append(fold, it)
		}
	}
	if err := s.FoldCooc(ctx, fold); err != nil {
		return err
	}
	w.reset()
	return nil
}

// sumTrending returns trending.lua's arguments for ops (in offset order)
// after offset after: the weights summed per item.
func (s *Store) sumTrending(p string, ops []trendOp, after int64) []any {
	k := 0
	for k < len(ops) && ops[k].off <= after {
		k++
	}
	ops = ops[k:]
	sum := make(map[string]float64)
	var order []string
	for _, op := range ops {
		if _, ok := sum[op.item]; !ok {
			order = append(order, op.item)
		}
		sum[op.item] += op.weight
	}
	args := make([]any, 0, 4+2*len(order))
	args = append(args, p, s.opt.TrendingCap, ops[0].off, ops[len(ops)-1].off)
	for _, it := range order {
		args = append(args, it, fmtFloat(sum[it]))
	}
	return args
}

// sumItem returns item.lua's arguments for an item's contributions (in
// offset order) after offset after: their sums, the row entry and the
// recent users.
func (s *Store) sumItem(p, ttl, now string, cs []contrib, after int64) []any {
	k := 0
	for k < len(cs) && cs[k].off <= after {
		k++
	}
	cs = cs[k:]
	var pop, deg float64
	var maxts int64
	row := newCoocRow()
	users := make(map[string]int64)
	var order []string
	for _, c := range cs {
		if c.user != "" {
			if _, ok := users[c.user]; !ok {
				order = append(order, c.user)
			}
			users[c.user] = c.ts // the last by offset, as one ZADD each would leave it
			maxts = max(maxts, c.ts)
		}
		if c.hasW {
			pop += c.weight
		}
		if c.isNew {
			deg += c.decay
		}
		for _, co := range c.co {
			row.add(co, c.decay)
		}
	}
	first, last := cs[0].off, cs[len(cs)-1].off
	entry := ""
	if len(row.order) > 0 {
		entry = deltaEntry(p, first, last, row)
	}
	num := func(f float64) string {
		if f == 0 {
			return ""
		}
		return fmtFloat(f)
	}
	args := make([]any, 0, 10+2*len(order))
	args = append(args, p, s.opt.ItemUsersCap, ttl, now, first, last, num(pop), num(deg), maxts, entry)
	for _, u := range order {
		args = append(args, users[u], u)
	}
	return args
}

// fencedAnswer reads item.lua's or trending.lua's answer: a status and a
// row length or fence.
func fencedAnswer(c *redis.Cmd) (status, val int64, err error) {
	v, err := c.Slice()
	if err != nil {
		return 0, 0, err
	}
	if len(v) != 2 {
		return 0, 0, errors.New("malformed script answer")
	}
	status, ok1 := v[0].(int64)
	val, ok2 := v[1].(int64)
	if !ok1 || !ok2 {
		return 0, 0, errors.New("malformed script answer")
	}
	return status, val, nil
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
