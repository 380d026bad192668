package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/topk"
)

var (
	//go:embed lua/owner_trending.lua
	ownerTrendingLua    string
	ownerTrendingScript = redis.NewScript(ownerTrendingLua)
)

// The item owner (ingest.item_owner) keeps the state of the items of its
// partitions of the repartition topic in memory: an image of each item's
// key group as Redis holds it (the recent users, the co-occurrence and
// next-item rows folded, the meta hash with its per-source-partition
// fences, degree and popularity). Contributions (ItemUpdate) are queued
// per item as they arrive; Flush applies them, skipping each one at or
// below the item's fence for its source partition, and writes every
// changed item with one guarded write (guarded.go): the recent users
// changed (ZADD, ZREM), each row whole as one folded entry, the meta hash
// with the fences and a version v one higher than the copy's. The write
// runs only while the meta hash holds v, n and pop as the copy holds
// them: every owner write changes v, an erasure (forget_item.lua) changes
// v, n or pop, an expiry removes them all. A refused write drops the
// copy; the item is read again and its queued contributions applied
// again, the fences skipping what another writer applied. Trending gets
// each written item's popularity, tagged with its version
// (lua/owner_trending.lua), so a late write of an older version changes
// nothing.
//
// An item is read from Redis when its first contributions are flushed,
// and its copy dropped once no contribution reached it for the idle time,
// when more than MaxItems are kept (the least recently reached first), or
// once its repartition partition is no longer assigned here (kept until
// its queued contributions are written).

// ItemOwnerMetrics counts the item owner's work.
type ItemOwnerMetrics struct {
	Items         prometheus.Gauge
	Writes        *prometheus.CounterVec // by result: written, refused
	Contributions *prometheus.CounterVec // by result: applied, skipped
	Evicted       *prometheus.CounterVec // by reason: idle, revoked
}

// NewItemOwnerMetrics registers the item owner's metrics on reg (nil:
// not registered).
func NewItemOwnerMetrics(reg prometheus.Registerer) *ItemOwnerMetrics {
	m := &ItemOwnerMetrics{
		Items: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_item_owner_items",
			Help: "Items whose state the item owner keeps in memory.",
		}),
		Writes: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_item_owner_writes_total",
			Help: "Guarded item writes of the item owner, by result: written, or refused (another writer changed the item first: another owner, an erasure, expiry; the item is read again and its contributions applied again).",
		}, []string{"result"}),
		Contributions: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_item_owner_contributions_total",
			Help: "Per-offset item contributions the item owner flushed, by result: applied, or skipped (at or below the item's fence for its source partition: delivered again).",
		}, []string{"result"}),
		Evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_item_owner_evicted_total",
			Help: "Items dropped from the item owner's memory (Redis keeps them), by reason: count (ingest.item_owner_cache, least recently reached first), idle or revoked (the repartition partition was assigned elsewhere).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"written", "refused"} {
		m.Writes.WithLabelValues(r)
	}
	for _, r := range []string{"applied", "skipped"} {
		m.Contributions.WithLabelValues(r)
	}
	for _, r := range []string{"count", "idle", "revoked"} {
		m.Evicted.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Items, m.Writes, m.Contributions, m.Evicted)
	}
	return m
}

// ItemOwnerOptions configures an ItemOwner.
type ItemOwnerOptions struct {
	// Idle drops an item's copy once no contribution reached it for this
	// long; 0 keeps copies until their partition is revoked.
	Idle time.Duration
	// MaxItems bounds the items kept in memory between flushes (the
	// least recently reached go first); 0: no bound.
	MaxItems int
	Metrics  *ItemOwnerMetrics // nil: counted but not registered
}

// ItemOwner keeps the items of its repartition partitions in memory and
// writes them behind (see above). Add, Flush and Sweep are called by one
// goroutine; Assigned may be called from another.
type ItemOwner struct {
	s   *Store
	opt ItemOwnerOptions

	items map[string]*ownedItem
	dirty map[string]bool     // items with queued contributions
	trend map[string]trendSet // written items whose trending weight is not written yet

	mu       sync.Mutex
	assigned map[int]bool // nil: every partition

	failBeforeTrend bool // tests: simulate a crash between the item writes and trending
}

type trendSet struct {
	v   int64
	pop float64
}

// ownedItem is one item: its queued contributions and, once read, the
// copy of its key group.
type ownedItem struct {
	part  int // the repartition partition its last update came from
	used  time.Time
	queue []queuedContrib
	st    *itemCopy // nil until read, and after a failed or refused write
}

type queuedContrib struct {
	p int32
	c ItemContrib
}

// itemCopy is the image of one item's keys.
type itemCopy struct {
	meta    map[string]string
	users   map[string]float64 // user -> event time (ms)
	row     map[string]float64
	next    map[string]float64
	rowLen  int64 // entries of the row lists in Redis
	nextLen int64
}

// NewItemOwner returns an item owner writing to s.
func (s *Store) NewItemOwner(opt ItemOwnerOptions) *ItemOwner {
	if opt.Metrics == nil {
		opt.Metrics = NewItemOwnerMetrics(nil)
	}
	return &ItemOwner{s: s, opt: opt, items: make(map[string]*ownedItem), dirty: make(map[string]bool), trend: make(map[string]trendSet)}
}

// Add queues u, received on repartition partition part.
func (o *ItemOwner) Add(part int, u ItemUpdate) {
	if len(u.Contribs) == 0 {
		return
	}
	it := o.items[u.Item]
	if it == nil {
		it = &ownedItem{}
		o.items[u.Item] = it
		o.opt.Metrics.Items.Inc()
	}
	it.part = part
	it.used = o.s.opt.Now()
	for _, c := range u.Contribs {
		it.queue = append(it.queue, queuedContrib{p: u.Partition, c: c})
	}
	o.dirty[u.Item] = true
}

// Pending reports whether contributions or trending weights wait for a
// flush.
func (o *ItemOwner) Pending() bool { return len(o.dirty) > 0 || len(o.trend) > 0 }

// Assigned tells the owner the repartition partitions assigned to it
// now; Sweep drops the copies of the others once they are written.
func (o *ItemOwner) Assigned(partitions []int) {
	o.mu.Lock()
	defer o.mu.Unlock()
	o.assigned = make(map[int]bool, len(partitions))
	for _, p := range partitions {
		o.assigned[p] = true
	}
}

// Sweep drops the copies of items without queued contributions that no
// contribution reached for the idle time or whose partition is assigned
// elsewhere.
func (o *ItemOwner) Sweep() {
	o.mu.Lock()
	assigned := o.assigned
	o.mu.Unlock()
	var cut time.Time
	if o.opt.Idle > 0 {
		cut = o.s.opt.Now().Add(-o.opt.Idle)
	}
	for name, it := range o.items {
		if o.dirty[name] {
			continue
		}
		reason := ""
		switch {
		case assigned != nil && !assigned[it.part]:
			reason = "revoked"
		case !cut.IsZero() && it.used.Before(cut):
			reason = "idle"
		default:
			continue
		}
		delete(o.items, name)
		o.opt.Metrics.Items.Dec()
		o.opt.Metrics.Evicted.WithLabelValues(reason).Inc()
	}
	if o.opt.MaxItems <= 0 || len(o.items) <= o.opt.MaxItems {
		return
	}
	type use struct {
		name string
		at   time.Time
	}
	var clean []use
	for name, it := range o.items {
		if !o.dirty[name] {
			clean = append(clean, use{name, it.used})
		}
	}
	slices.SortFunc(clean, func(a, b use) int { return a.at.Compare(b.at) })
	for _, u := range clean[:min(len(clean), len(o.items)-o.opt.MaxItems)] {
		delete(o.items, u.name)
		o.opt.Metrics.Items.Dec()
		o.opt.Metrics.Evicted.WithLabelValues("count").Inc()
	}
}

// maxItemAttempts bounds how often one flush writes an item again after
// its write was refused.
const maxItemAttempts = 8

// Flush applies every queued contribution and writes the changed items
// and their trending weights. On an error the contributions stay queued
// (the copies whose write is in doubt are dropped), and Flush may be
// called again.
func (o *ItemOwner) Flush(ctx context.Context) error {
	todo := slices.Sorted(maps.Keys(o.dirty))
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxItemAttempts {
			return fmt.Errorf("item %q: its guarded write was refused %d times in a row", todo[0], attempt)
		}
		var again []string
		for start := 0; start < len(todo); start += itemChunk {
			refused, err := o.flushChunk(ctx, todo[start:min(start+itemChunk, len(todo))])
			if err != nil {
				return err
			}
			again = append(again, refused...)
		}
		todo = again
	}
	if o.failBeforeTrend {
		o.failBeforeTrend = false
		return errors.New("writing trending: simulated crash")
	}
	return o.writeTrending(ctx)
}

// flushChunk reads the items of names that have no copy, applies their
// queued contributions and writes them; it returns the items whose write
// was refused (their copies dropped).
func (o *ItemOwner) flushChunk(ctx context.Context, names []string) ([]string, error) {
	if err := o.load(ctx, names); err != nil {
		return nil, err
	}
	writes := make([]*guardedWrite, 0, len(names))
	var at []string
	for _, name := range names {
		it := o.items[name]
		g := o.apply(name, it)
		if g == nil {
			// Every contribution was applied before, perhaps by a
			// process that died before it wrote trending: trending gets
			// the item's weight again (unchanged when it holds this
			// version already).
			it.queue = it.queue[:0]
			delete(o.dirty, name)
			if v := metaInt(it.st.meta, "v", 0); v > 0 {
				o.trend[name] = trendSet{v: v, pop: metaFloat(it.st.meta, "pop")}
			}
			continue
		}
		writes = append(writes, g)
		at = append(at, name)
	}
	if len(writes) == 0 {
		return nil, nil
	}
	cmds, err := o.s.runScripts(ctx, guardedScript, len(writes), func(pipe redis.Pipeliner, k int) *redis.Cmd {
		return writes[k].send(ctx, pipe)
	})
	drop := func() {
		for _, name := range at {
			o.items[name].st = nil // what was written is unknown
		}
	}
	if err != nil {
		drop()
		return nil, fmt.Errorf("writing item state: %w", err)
	}
	var refused []string
	for k, name := range at {
		ok, _, err := guardedAnswer(cmds[k])
		if err != nil {
			drop()
			return nil, fmt.Errorf("writing item state: %w", err)
		}
		it := o.items[name]
		if !ok {
			o.opt.Metrics.Writes.WithLabelValues("refused").Inc()
			it.st = nil
			refused = append(refused, name)
			continue
		}
		o.opt.Metrics.Writes.WithLabelValues("written").Inc()
		it.queue = it.queue[:0]
		delete(o.dirty, name)
		v, _ := strconv.ParseInt(it.st.meta["v"], 10, 64)
		pop, _ := strconv.ParseFloat(it.st.meta["pop"], 64)
		o.trend[name] = trendSet{v: v, pop: pop}
	}
	return refused, nil
}

// trendChunk bounds the items of one owner_trending.lua call.
const trendChunk = 500

// writeTrending writes the trending weights of the items written.
func (o *ItemOwner) writeTrending(ctx context.Context) error {
	if len(o.trend) == 0 {
		return nil
	}
	names := slices.Sorted(maps.Keys(o.trend))
	n := (len(names) + trendChunk - 1) / trendChunk
	keys := []string{o.s.keys.Trending(), o.s.keys.TrendingVersions()}
	_, err := o.s.runScripts(ctx, ownerTrendingScript, n, func(pipe redis.Pipeliner, k int) *redis.Cmd {
		part := names[k*trendChunk : min((k+1)*trendChunk, len(names))]
		args := make([]any, 0, 1+3*len(part))
		args = append(args, o.s.opt.TrendingCap)
		for _, name := range part {
			t := o.trend[name]
			args = append(args, name, t.v, fmtFloat(t.pop))
		}
		return ownerTrendingScript.EvalSha(ctx, pipe, keys, args...)
	})
	if err != nil {
		return fmt.Errorf("writing trending: %w", err)
	}
	clear(o.trend)
	return nil
}

// itemLoad is one item's keys read in a pipeline, with v, n and pop read
// again after them: a write in between changes one of them, and the item
// is read again.
type itemLoad struct {
	meta      *redis.MapStringStringCmd
	users     *redis.ZSliceCmd
	row, next *redis.StringSliceCmd
	check     *redis.SliceCmd
	name      string
}

// maxItemLoads bounds how often one item is read again because a write
// fell between its reads.
const maxItemLoads = 8

// load reads the copies of the items of names that have none.
func (o *ItemOwner) load(ctx context.Context, names []string) error {
	var todo []string
	for _, name := range names {
		if o.items[name].st == nil {
			todo = append(todo, name)
		}
	}
	k := o.s.keys
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxItemLoads {
			return fmt.Errorf("item %q changed while read, %d times", todo[0], attempt)
		}
		pipe := o.s.rdb.Pipeline()
		loads := make([]itemLoad, len(todo))
		for j, name := range todo {
			loads[j] = itemLoad{
				meta:  pipe.HGetAll(ctx, k.ItemMeta(name)),
				users: pipe.ZRangeWithScores(ctx, k.ItemUsers(name), 0, -1),
				row:   pipe.LRange(ctx, k.ItemCooc(name), 0, -1),
				next:  pipe.LRange(ctx, k.ItemNext(name), 0, -1),
				check: pipe.HMGet(ctx, k.ItemMeta(name), itemGuards...),
				name:  name,
			}
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return fmt.Errorf("reading item state: %w", err)
		}
		var again []string
		for _, l := range loads {
			st, err := o.copyOf(l)
			if err != nil {
				return fmt.Errorf("reading item state: %w", err)
			}
			if st == nil {
				again = append(again, l.name)
				continue
			}
			o.items[l.name].st = st
		}
		todo = again
	}
	return nil
}

// itemGuards are the meta fields an item's guarded write checks.
var itemGuards = []string{"v", "n", "pop"}

// copyOf returns the copy read, nil when a write fell between the reads.
func (o *ItemOwner) copyOf(l itemLoad) (*itemCopy, error) {
	st := &itemCopy{}
	var err error
	if st.meta, err = l.meta.Result(); err != nil {
		return nil, err
	}
	if st.users, err = zsetMap(l.users); err != nil {
		return nil, err
	}
	check, err := l.check.Result()
	if err != nil {
		return nil, err
	}
	for k, f := range itemGuards {
		v, ok := st.meta[f]
		if s, isStr := check[k].(string); isStr != ok || s != v {
			return nil, nil
		}
	}
	rows, err := l.row.Result()
	if err != nil {
		return nil, err
	}
	nexts, err := l.next.Result()
	if err != nil {
		return nil, err
	}
	st.rowLen, st.nextLen = int64(len(rows)), int64(len(nexts))
	st.row = o.s.foldRow(l.name, rows, "dropped by the item owner").val
	st.next = o.s.foldRow(l.name, nexts, "dropped by the item owner").val
	return st, nil
}

// apply applies it's queued contributions after its fences to its copy
// and returns the guarded write that makes Redis hold the copy, or nil
// when every contribution was skipped.
func (o *ItemOwner) apply(name string, it *ownedItem) *guardedWrite {
	st := it.st
	opt := &o.s.opt
	fences := make(map[int32]int64)
	fence := func(p int32) int64 {
		f, ok := fences[p]
		if !ok {
			f = metaInt(st.meta, "f:"+strconv.Itoa(int(p)), -1)
			fences[p] = f
		}
		return f
	}
	pop := metaFloat(st.meta, "pop")
	deg := metaFloat(st.meta, "n")
	changedUsers := make(map[string]bool)
	rowChanged, nextChanged := false, false
	maxts := int64(0)
	applied, skipped := 0, 0
	for _, q := range it.queue {
		c := &q.c
		if c.Offset <= fence(q.p) {
			skipped++
			continue
		}
		fences[q.p] = c.Offset
		applied++
		if c.User != "" {
			st.users[c.User] = float64(c.TS)
			changedUsers[c.User] = true
			maxts = max(maxts, c.TS)
			pop += c.Pop
			deg += c.Deg
		}
		for _, x := range c.Co {
			st.row[x.ID] += x.V
			rowChanged = true
		}
		for _, x := range c.Next {
			st.next[x.ID] += x.V
			nextChanged = true
		}
	}
	o.opt.Metrics.Contributions.WithLabelValues("skipped").Add(float64(skipped))
	if applied == 0 {
		return nil
	}
	o.opt.Metrics.Contributions.WithLabelValues("applied").Add(float64(applied))

	k := o.s.keys
	keys := struct{ users, row, next, meta string }{k.ItemUsers(name), k.ItemCooc(name), k.ItemNext(name), k.ItemMeta(name)}
	g := newGuardedWrite(keys.meta)
	for _, f := range itemGuards {
		g.guard(f, st.meta[f])
	}
	ttl := int64(opt.UserTTL / time.Second)
	var recreated int64 // bits (as k) of keys written anew: they need a TTL
	writeRow := func(key string, row map[string]float64, n int, length *int64, bit int64) {
		top := rankRow(row, n)
		if len(top) < len(row) {
			clear(row)
			for _, x := range top {
				row[x.ID] = x.Score
			}
		}
		switch {
		case len(top) == 0:
			if *length > 0 {
				g.cmd("DEL", key)
				*length = 0
			}
		case *length == 1:
			g.cmd("LSET", key, 0, encodeCoocRow(top)) // keeps the key's TTL
		default:
			if *length > 0 {
				g.cmd("DEL", key)
			}
			g.cmd("RPUSH", key, encodeCoocRow(top))
			*length = 1
			recreated |= bit
		}
	}
	if rowChanged {
		writeRow(keys.row, st.row, opt.CoocCap, &st.rowLen, 2)
	}
	if nextChanged {
		writeRow(keys.next, st.next, opt.NextCap, &st.nextLen, 8)
	}
	meta := [][2]string{}
	for p, f := range fences {
		if f >= 0 {
			meta = append(meta, [2]string{"f:" + strconv.Itoa(int(p)), fmtInt(f)})
		}
	}
	slices.SortFunc(meta, func(a, b [2]string) int { return strings.Compare(a[0], b[0]) })
	if pop != 0 || st.meta["pop"] != "" {
		meta = append(meta, [2]string{"pop", fmtFloat(pop)})
	}
	if deg != 0 || st.meta["n"] != "" {
		meta = append(meta, [2]string{"n", fmtFloat(deg)})
	}
	if len(changedUsers) > 0 {
		var gone []string
		if ttl > 0 && maxts > 0 {
			// retention: users whose last interaction with this item is
			// older than ttl (in event time) before the newest applied one
			cutoff := float64(maxts - ttl*1000)
			for u, ts := range st.users {
				if ts < cutoff {
					gone = append(gone, u)
				}
			}
			for _, u := range gone {
				delete(st.users, u)
			}
		}
		if over := len(st.users) - opt.ItemUsersCap; over > 0 {
			low := lowest(st.users, over)
			for _, u := range low {
				delete(st.users, u)
			}
			gone = append(gone, low...)
		}
		var za []any
		for _, u := range slices.Sorted(maps.Keys(changedUsers)) {
			if ts, ok := st.users[u]; ok {
				za = append(za, fmtInt(int64(ts)), u)
			}
		}
		cmdChunks(g, "ZADD", keys.users, za)
		if len(gone) > 0 {
			slices.Sort(gone)
			rm := make([]any, len(gone))
			for i, u := range gone {
				rm[i] = u
			}
			cmdChunks(g, "ZREM", keys.users, rm)
		}
		meta = append(meta, [2]string{"c", fmtInt(int64(len(st.users)))})
		if len(st.users) > 0 {
			low := lowest(st.users, 1)
			meta = append(meta, [2]string{"o", fmtInt(int64(st.users[low[0]]))})
		}
	}
	meta = append(meta, [2]string{"v", fmtInt(metaInt(st.meta, "v", 0) + 1)})
	renewMeta := false
	if ttl > 0 {
		now := opt.Now().Unix()
		x := metaInt(st.meta, "x", -1)
		mask := metaInt(st.meta, "k", 0)
		exist := []struct {
			key string
			bit int64
			has bool
		}{{keys.users, 1, len(st.users) > 0}, {keys.row, 2, st.rowLen > 0}, {keys.next, 8, st.nextLen > 0}}
		if x < 0 || now-x >= ttl/64 {
			mask = 4
			for _, e := range exist {
				if e.has {
					g.cmd("EXPIRE", e.key, ttl)
					mask += e.bit
				}
			}
			meta = append(meta, [2]string{"x", fmtInt(now)}, [2]string{"k", fmtInt(mask)})
			renewMeta = true
		} else {
			m2 := mask
			for _, e := range exist {
				if e.has && (mask&e.bit == 0 || recreated&e.bit != 0) {
					g.cmd("EXPIRE", e.key, ttl)
					m2 |= e.bit
				}
			}
			if m2 != mask {
				meta = append(meta, [2]string{"k", fmtInt(m2)})
			}
		}
	}
	hs := make([]any, 0, 2*len(meta))
	for _, f := range meta {
		hs = append(hs, f[0], f[1])
		st.meta[f[0]] = f[1]
	}
	g.cmd("HSET", keys.meta, hs...)
	if renewMeta {
		g.cmd("EXPIRE", keys.meta, ttl)
	}
	return g
}

// rankRow returns a row's n highest names, ranked as folding ranks them.
func rankRow(row map[string]float64, n int) []Scored {
	out := make([]Scored, 0, len(row))
	for id, v := range row {
		out = append(out, Scored{ID: id, Score: v})
	}
	return topk.Best(out, n, byRank)
}

// metaFloat reads a float of a meta hash, 0 when absent or malformed.
func metaFloat(m map[string]string, f string) float64 {
	v, err := strconv.ParseFloat(m[f], 64)
	if err != nil {
		return 0
	}
	return v
}
