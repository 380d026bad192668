package store

import (
	"cmp"
	"container/list"
	"context"
	_ "embed"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

var (
	//go:embed lua/owner_trending.lua
	ownerTrendingLua    string
	ownerTrendingScript = redis.NewScript(ownerTrendingLua)
)

// The item owner (ingest.item_owner) keeps the state of the items of its
// partitions of the repartition topic in memory: a copy of each item's
// meta hash as Redis holds it (its per-source-partition fences, degree,
// popularity, the bounds c and o, its version v) and the lengths of its
// rows. Contributions (ItemUpdate) are queued per item as they arrive;
// Flush applies them, skipping each one at or below the item's fence for
// its source partition, and writes every changed item with one guarded
// write (guarded.go) of plain commands: the recent users changed (ZADD,
// trimmed past the cap and the retention time when the bounds say so),
// each row's increments as one delta entry (RPUSH; a row past
// Options.CoocFold entries is folded after the write, cooc.go), the meta
// hash with the fences and a version v one higher than the copy's. Redis
// does no arithmetic and the process keeps no row: the rows are summed by
// their readers, as the item scripts' rows are. The write runs only while
// the meta hash holds v, n and pop as the copy holds them: every owner
// write changes v, an erasure (forget_item.lua) changes v, n or pop, an
// expiry removes them all. A refused write drops the copy; the item is
// read again and its queued contributions applied again, the fences
// skipping what another writer applied. Trending gets each written
// item's popularity, tagged with its version (lua/owner_trending.lua), so
// a late write of an older version changes nothing.
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
	Evicted       *prometheus.CounterVec // by reason: count, idle, revoked, memory
}

// NewItemOwnerMetrics registers the item owner's metrics on reg (nil:
// not registered).
func NewItemOwnerMetrics(reg prometheus.Registerer) *ItemOwnerMetrics {
	m := &ItemOwnerMetrics{
		Items: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_item_owner_items",
			Help: "Items whose copy the item owner keeps in memory (at most ingest.item_owner_cache, plus one flush chunk while it writes).",
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
			Help: "Items dropped from the item owner's memory (Redis keeps them), by reason: count (ingest.item_owner_cache, least recently reached first), idle, revoked (the repartition partition was assigned elsewhere) or memory (the live heap past three quarters of run.memory_limit_mb: the least recently reached quarter).",
		}, []string{"reason"}),
	}
	for _, r := range []string{"written", "refused"} {
		m.Writes.WithLabelValues(r)
	}
	for _, r := range []string{"applied", "skipped"} {
		m.Contributions.WithLabelValues(r)
	}
	for _, r := range []string{"count", "idle", "revoked", "memory"} {
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
	lru   *list.List          // names of the items holding a copy, most recently reached first
	dirty map[string]bool     // items with queued contributions
	trend map[string]trendSet // written items whose trending weight is not written yet

	mu       sync.Mutex
	assigned map[int]bool // nil: every partition

	scratch applyScratch

	failBeforeTrend bool            // tests: simulate a crash between the item writes and trending
	trimmedAt       uint64          // the collection after which Sweep last dropped copies for memory
	firsts          map[string]bool // users of items written for the first time (TakeFirstUsers)
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
	st    *itemCopy     // nil until read, and after a failed or refused write or an eviction
	elem  *list.Element // in lru while st is set
}

// queuedContrib is one queued contribution: its source partition and
// where Add found it (the update's contributions are not copied).
type queuedContrib struct {
	p int32
	c *ItemContrib
}

// itemCopy is what an item owner keeps of one item: its meta hash as
// Redis holds it, parsed (fences, n, pop, c, o, v, x, k; the guard fields
// also as the strings Redis holds, which the guard compares), and about
// how many entries its rows hold (rl, nl: when to fold them). It holds no map, so
// that the garbage collector scans little of a copy.
type itemCopy struct {
	fences          []partFence // by partition
	vs, ns, pops    string      // v, n, pop as Redis holds them ("" absent)
	n, pop          float64
	v               int64
	c               int64 // -1 absent
	o               int64 // valid with hasO
	hasO            bool
	x, k            int64 // x -1 absent
	rowLen, nextLen int64
	// the pairs the rows' entries since their last fold hold (rp, np):
	// a reader sums them all, so a row is also folded once they pass
	// what a folded row holds
	rowPairs, nextPairs int64
}

// partFence is the fence of one source partition: its last applied
// offset.
type partFence struct {
	p   int32
	off int64
}

// newItemCopy parses an item's meta hash. Its rows' lengths are rl and nl
// (the entries as the item owner last wrote them; an erasure's entry or
// a fold between are not counted); without them (an item last written
// by the item scripts), long, the length given, which makes the first
// write fold them; without a meta hash (a new item), 0.
func newItemCopy(meta map[string]string, long int64) *itemCopy {
	st := &itemCopy{vs: meta["v"], ns: meta["n"], pops: meta["pop"]}
	if len(meta) > 0 {
		st.rowLen, st.nextLen = metaInt(meta, "rl", long), metaInt(meta, "nl", long)
		st.rowPairs, st.nextPairs = metaInt(meta, "rp", 0), metaInt(meta, "np", 0)
	}
	st.n, st.pop = metaFloat(meta, "n"), metaFloat(meta, "pop")
	st.v = metaInt(meta, "v", 0)
	st.c = metaInt(meta, "c", -1)
	if _, ok := meta["o"]; ok {
		st.o, st.hasO = metaInt(meta, "o", 0), true
	}
	st.x, st.k = metaInt(meta, "x", -1), metaInt(meta, "k", 0)
	for f := range meta {
		ps, ok := strings.CutPrefix(f, "f:")
		if !ok {
			continue
		}
		p, err := strconv.ParseInt(ps, 10, 32)
		if err != nil || p < 0 {
			continue
		}
		if off := metaInt(meta, f, -1); off >= 0 {
			st.fences = append(st.fences, partFence{p: int32(p), off: off})
		}
	}
	slices.SortFunc(st.fences, func(a, b partFence) int { return cmp.Compare(a.p, b.p) })
	return st
}

// fence returns the fence of source partition p (-1: none).
func (st *itemCopy) fence(p int32) int64 {
	if i, ok := slices.BinarySearchFunc(st.fences, p, func(f partFence, p int32) int { return cmp.Compare(f.p, p) }); ok {
		return st.fences[i].off
	}
	return -1
}

// setFence sets the fence of source partition p.
func (st *itemCopy) setFence(p int32, off int64) {
	i, ok := slices.BinarySearchFunc(st.fences, p, func(f partFence, p int32) int { return cmp.Compare(f.p, p) })
	if ok {
		st.fences[i].off = off
		return
	}
	st.fences = slices.Insert(st.fences, i, partFence{p: p, off: off})
}

// NewItemOwner returns an item owner writing to s.
func (s *Store) NewItemOwner(opt ItemOwnerOptions) *ItemOwner {
	if opt.Metrics == nil {
		opt.Metrics = NewItemOwnerMetrics(nil)
	}
	return &ItemOwner{s: s, opt: opt, items: make(map[string]*ownedItem), lru: list.New(), dirty: make(map[string]bool), trend: make(map[string]trendSet)}
}

// setCopy sets the copy of item name (nil: drops it).
func (o *ItemOwner) setCopy(name string, it *ownedItem, st *itemCopy) {
	switch {
	case st != nil && it.elem == nil:
		it.elem = o.lru.PushFront(name)
	case st == nil && it.elem != nil:
		o.lru.Remove(it.elem)
		it.elem = nil
	}
	it.st = st
	o.opt.Metrics.Items.Set(float64(o.lru.Len()))
}

// evict drops item name, which has no queued contributions, from memory,
// counted under reason.
func (o *ItemOwner) evict(name, reason string) {
	o.setCopy(name, o.items[name], nil)
	delete(o.items, name)
	o.opt.Metrics.Evicted.WithLabelValues(reason).Inc()
}

// trimCopies drops the copies of the least recently reached items
// without queued contributions while more than MaxItems are kept.
func (o *ItemOwner) trimCopies() {
	if o.opt.MaxItems <= 0 {
		return
	}
	e := o.lru.Back()
	for o.lru.Len() > o.opt.MaxItems && e != nil {
		prev := e.Prev()
		name := e.Value.(string)
		if !o.dirty[name] {
			o.evict(name, "count")
		}
		e = prev
	}
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
	}
	if it.elem != nil {
		o.lru.MoveToFront(it.elem)
	}
	it.part = part
	it.used = o.s.opt.Now()
	it.queue = slices.Grow(it.queue, len(u.Contribs))
	for i := range u.Contribs {
		it.queue = append(it.queue, queuedContrib{p: u.Partition, c: &u.Contribs[i]})
	}
	o.dirty[u.Item] = true
}

// TakeFirstUsers returns the users whose events reached items that had
// no popularity before (new items), sorted, and forgets them. Their
// lists were computed before the items were written (the ingest role
// asks for a user's refresh as soon as the user half is written): the
// item owner asks again once it wrote them.
func (o *ItemOwner) TakeFirstUsers() []string {
	f := slices.Sorted(maps.Keys(o.firsts))
	o.firsts = nil
	return f
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

// Sweep drops the items without queued contributions that no
// contribution reached for the idle time or whose partition is assigned
// elsewhere, the copies past MaxItems and, when the live heap is over
// three quarters of the memory limit, the least recently reached quarter.
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
		case it.st == nil:
			delete(o.items, name) // nothing kept
			continue
		default:
			continue
		}
		o.evict(name, reason)
	}
	o.trimCopies()
	o.trimForMemory()
}

// trimForMemory drops the least recently reached quarter of the copies
// without queued contributions when the live heap (as of the last
// collection) is over three quarters of the Go runtime's memory limit
// (run.memory_limit_mb or GOMEMLIMIT), at most once per collection, as
// the ingest role does with users' copies (TrimUserCopies).
func (o *ItemOwner) trimForMemory() {
	h := o.s.heap()
	if !h.pressed() || h.cycles == o.trimmedAt {
		return
	}
	o.trimmedAt = h.cycles
	n := (o.lru.Len() + 3) / 4
	for e := o.lru.Back(); n > 0 && e != nil; {
		prev := e.Prev()
		name := e.Value.(string)
		if !o.dirty[name] {
			o.evict(name, "memory")
			n--
		}
		e = prev
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
			// Copies past MaxItems go as soon as they are written, so
			// that a flush of more items holds at most a chunk more.
			o.trimCopies()
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
	defer func() {
		m := o.opt.Metrics.Contributions
		m.WithLabelValues("applied").Add(float64(o.scratch.applied))
		m.WithLabelValues("skipped").Add(float64(o.scratch.skipped))
		o.scratch.applied, o.scratch.skipped = 0, 0
	}()
	for _, name := range names {
		it := o.items[name]
		g := o.apply(name, it)
		if g == nil {
			// Every contribution was applied before, perhaps by a
			// process that died before it wrote trending: trending gets
			// the item's weight again (unchanged when it holds this
			// version already).
			it.queue = nil
			delete(o.dirty, name)
			if it.st.v > 0 {
				o.trend[name] = trendSet{v: it.st.v, pop: it.st.pop}
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
	if err != nil {
		o.dropCopies(at) // what was written is unknown
		return nil, fmt.Errorf("writing item state: %w", err)
	}
	var refused, fold, foldNext []string
	written := 0
	defer func() {
		o.opt.Metrics.Writes.WithLabelValues("written").Add(float64(written))
		o.opt.Metrics.Writes.WithLabelValues("refused").Add(float64(len(refused)))
	}()
	for k, name := range at {
		ok, _, err := guardedAnswer(cmds[k])
		if err != nil {
			o.dropCopies(at)
			return nil, fmt.Errorf("writing item state: %w", err)
		}
		it := o.items[name]
		if !ok {
			o.setCopy(name, it, nil)
			refused = append(refused, name)
			continue
		}
		written++
		if it.st.rowLen > int64(o.s.opt.CoocFold) || it.st.rowPairs > int64(o.s.opt.CoocCap) {
			fold = append(fold, name)
			it.st.rowLen, it.st.rowPairs = 1, 0
		}
		if it.st.nextLen > int64(o.s.opt.CoocFold) || it.st.nextPairs > int64(o.s.opt.NextCap) {
			foldNext = append(foldNext, name)
			it.st.nextLen, it.st.nextPairs = 1, 0
		}
		// nil, not queue[:0]: a kept backing array would hold the applied
		// contributions (and their row pairs) as long as the copy lives.
		it.queue = nil
		delete(o.dirty, name)
		o.trend[name] = trendSet{v: it.st.v, pop: it.st.pop}
	}
	// Rows that these writes made long are folded (cooc.go): read,
	// folded into one entry, written back if unchanged meanwhile.
	if err := o.s.FoldCooc(ctx, fold); err != nil {
		return nil, err
	}
	if err := o.s.FoldNext(ctx, foldNext); err != nil {
		return nil, err
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

// load reads the copies of the items of names that have none: the meta
// hash, with one command (one instant's state).
func (o *ItemOwner) load(ctx context.Context, names []string) error {
	var todo []string
	for _, name := range names {
		if o.items[name].st == nil {
			todo = append(todo, name)
		}
	}
	if len(todo) == 0 {
		return nil
	}
	k := o.s.keys
	pipe := o.s.rdb.Pipeline()
	metas := make([]*redis.MapStringStringCmd, len(todo))
	for j, name := range todo {
		metas[j] = pipe.HGetAll(ctx, k.ItemMeta(name))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return fmt.Errorf("reading item state: %w", err)
	}
	// An item without a meta hash is new, or its meta hash expired before
	// its recent users (keys created after the last TTL renewal expire
	// later): their number, the bound c, is read (ZCARD, one more round
	// trip for new items only), so that a new item's writes do not trim
	// its recent users until they pass the cap.
	var fresh []*itemCopy
	var cards []*redis.IntCmd
	pipe = o.s.rdb.Pipeline()
	for j, name := range todo {
		meta, err := metas[j].Result()
		if err != nil {
			return fmt.Errorf("reading item state: %w", err)
		}
		st := newItemCopy(meta, int64(o.s.opt.CoocFold)+1)
		o.setCopy(name, o.items[name], st)
		if len(meta) == 0 {
			fresh = append(fresh, st)
			cards = append(cards, pipe.ZCard(ctx, k.ItemUsers(name)))
		}
	}
	if len(fresh) == 0 {
		return nil
	}
	if _, err := pipe.Exec(ctx); err != nil {
		o.dropCopies(todo)
		return fmt.Errorf("reading item state: %w", err)
	}
	for j, st := range fresh {
		st.c = cards[j].Val()
	}
	return nil
}

// dropCopies drops the copies of the items of names.
func (o *ItemOwner) dropCopies(names []string) {
	for _, name := range names {
		o.setCopy(name, o.items[name], nil)
	}
}

// ownerDeltaPartition is the partition of the delta entries an item
// owner appends to rows (cooc.go, entry.go): they sum the contributions
// of one write, of any source partitions, and First and Last hold the
// write's version, which makes them unique in the row.
const ownerDeltaPartition = math.MaxInt32

// applyScratch is what apply reuses from one item to the next.
type applyScratch struct {
	users     map[string]int64
	userOrder []string
	row, next coocRow
	changed   []int32 // source partitions whose fence moved
	pairs     []Scored
	buf       []byte

	applied, skipped int // contributions, counted into the metrics once per chunk
}

// apply applies it's queued contributions after its fences to its copy
// and returns the guarded write that makes Redis hold the copy, or nil
// when every contribution was skipped. The write appends the rows'
// increments as one delta entry each (the rows are folded, once long,
// after the write), adds or updates the recent users changed, trims them
// past the cap by the bound c on their number (as item.lua does) and
// sets the meta hash: the fences moved, n, pop, c, o, v one higher, TTL
// bookkeeping. The write is guarded by v, n and pop as the copy holds
// them.
func (o *ItemOwner) apply(name string, it *ownedItem) *guardedWrite {
	st := it.st
	opt := &o.s.opt
	sc := &o.scratch
	if sc.users == nil {
		sc.users = make(map[string]int64)
		sc.row.val, sc.next.val = make(map[string]float64), make(map[string]float64)
	}
	clear(sc.users)
	sc.userOrder, sc.changed = sc.userOrder[:0], sc.changed[:0]
	for _, r := range []*coocRow{&sc.row, &sc.next} {
		// delete, not clear: clear costs the map's largest size so far
		for _, id := range r.order {
			delete(r.val, id)
		}
		r.order = r.order[:0]
	}
	pop, deg := st.pop, st.n
	// An item without popularity before this write is new to the
	// readers: the lists of its users were computed without it.
	first := st.vs == "" && st.pops == ""
	maxts, mints := int64(0), int64(0)
	applied, skipped := 0, 0
	for _, q := range it.queue {
		c := q.c
		if c.Offset <= st.fence(q.p) {
			skipped++
			continue
		}
		st.setFence(q.p, c.Offset)
		if !slices.Contains(sc.changed, q.p) {
			sc.changed = append(sc.changed, q.p)
		}
		applied++
		if c.User != "" {
			if _, ok := sc.users[c.User]; !ok {
				sc.userOrder = append(sc.userOrder, c.User)
			}
			sc.users[c.User] = c.TS
			if first {
				if o.firsts == nil {
					o.firsts = make(map[string]bool)
				}
				o.firsts[c.User] = true
			}
			maxts = max(maxts, c.TS)
			if mints == 0 || c.TS < mints {
				mints = c.TS
			}
			pop += c.Pop
			deg += c.Deg
		}
		for _, x := range c.Co {
			sc.row.add(x.ID, x.V)
		}
		for _, x := range c.Next {
			sc.next.add(x.ID, x.V)
		}
	}
	sc.skipped += skipped
	sc.applied += applied
	if applied == 0 {
		return nil
	}

	k := o.s.keys
	keys := struct{ users, row, next, meta string }{k.ItemUsers(name), k.ItemCooc(name), k.ItemNext(name), k.ItemMeta(name)}
	g := newGuardedWrite(keys.meta)
	g.guard("v", st.vs)
	g.guard("n", st.ns)
	g.guard("pop", st.pops)
	version := st.v + 1
	var lengths []any
	appendRow := func(key, field, pfield string, r *coocRow, length, pairs *int64) {
		if len(r.order) == 0 {
			return
		}
		sc.pairs = sc.pairs[:0]
		for _, id := range r.order {
			sc.pairs = append(sc.pairs, Scored{ID: id, Score: r.val[id]})
		}
		sc.buf = appendDelta(sc.buf[:0], rowDeltaEntry{Partition: ownerDeltaPartition, First: version, Last: version, Pairs: sc.pairs})
		g.cmd("RPUSH", key, string(sc.buf))
		*length++
		*pairs += int64(len(sc.pairs))
		lengths = append(lengths, field, fmtInt(*length), pfield, fmtInt(*pairs))
	}
	appendRow(keys.row, "rl", "rp", &sc.row, &st.rowLen, &st.rowPairs)
	appendRow(keys.next, "nl", "np", &sc.next, &st.nextLen, &st.nextPairs)

	slices.Sort(sc.changed)
	hs := make([]any, 0, 2*len(sc.changed)+20)
	hs = append(hs, lengths...)
	for _, p := range sc.changed {
		hs = append(hs, "f:"+strconv.Itoa(int(p)), fmtInt(st.fence(p)))
	}
	if pop != 0 || st.pops != "" {
		st.pop, st.pops = pop, fmtFloat(pop)
		hs = append(hs, "pop", st.pops)
	}
	if deg != 0 || st.ns != "" {
		st.n, st.ns = deg, fmtFloat(deg)
		hs = append(hs, "n", st.ns)
	}
	ttl := int64(opt.UserTTL / time.Second)
	hadUsers := st.c > 0
	if len(sc.users) > 0 {
		za := make([]any, 0, 2*len(sc.users))
		for _, u := range sc.userOrder {
			za = append(za, fmtInt(sc.users[u]), u)
		}
		cmdChunks(g, "ZADD", keys.users, za)
		// c is at least the zset's size and o at most its oldest time
		// (item.lua): the zset is trimmed only when they say there may be
		// something to trim.
		card := st.c
		if card >= 0 {
			card += int64(len(sc.users))
		}
		lowV := mints
		if st.hasO {
			lowV = min(st.o, mints)
		}
		if ttl > 0 && maxts > 0 {
			// retention: users whose last interaction with this item is
			// older than ttl (in event time) before the newest applied one
			cutoff := maxts - ttl*1000
			if lowV < cutoff {
				g.cmd("ZREMRANGEBYSCORE", keys.users, "-inf", "("+fmtInt(cutoff))
				lowV = cutoff
			}
		}
		if card < 0 || card > int64(opt.ItemUsersCap) {
			g.cmd("ZREMRANGEBYRANK", keys.users, 0, -opt.ItemUsersCap-1)
			card = int64(opt.ItemUsersCap)
		}
		st.c, st.o, st.hasO = card, lowV, true
		hs = append(hs, "c", fmtInt(card), "o", fmtInt(lowV))
	}
	st.v, st.vs = version, fmtInt(version)
	hs = append(hs, "v", st.vs)
	renewMeta := false
	if ttl > 0 {
		now := opt.Now().Unix()
		exist := []struct {
			key string
			bit int64
			has bool
		}{{keys.users, 1, len(sc.users) > 0 || hadUsers}, {keys.row, 2, st.rowLen > 0}, {keys.next, 8, st.nextLen > 0}}
		if st.x < 0 || now-st.x >= ttl/64 {
			mask := int64(4)
			for _, e := range exist {
				if e.has {
					g.cmd("EXPIRE", e.key, ttl)
					mask += e.bit
				}
			}
			st.x, st.k = now, mask
			hs = append(hs, "x", fmtInt(now), "k", fmtInt(mask))
			renewMeta = true
		} else {
			m2 := st.k
			for _, e := range exist {
				if e.has && st.k&e.bit == 0 {
					g.cmd("EXPIRE", e.key, ttl)
					m2 |= e.bit
				}
			}
			if m2 != st.k {
				st.k = m2
				hs = append(hs, "k", fmtInt(m2))
			}
		}
	}
	g.cmd("HSET", keys.meta, hs...)
	if renewMeta {
		g.cmd("EXPIRE", keys.meta, ttl)
	}
	return g
}

// metaFloat reads a float of a meta hash, 0 when absent or malformed.
func metaFloat(m map[string]string, f string) float64 {
	v, err := strconv.ParseFloat(m[f], 64)
	if err != nil {
		return 0
	}
	return v
}
