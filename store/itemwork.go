package store

import (
	"context"
	"errors"
	"fmt"
	"slices"
	"strconv"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
)

// itemChunk bounds the item scripts sent in one pipeline, so that a large
// item window's arguments and answers are not all in memory at once (a
// variable for tests).
var itemChunk = 512

// ItemWork is the item and trending half of one partition's applied
// batches: what the user half answered, written by ApplyItems summed per
// item. A consumer may collect several batches in one ItemWork and write
// them together (ingest.item_window): fewer, larger item scripts. It keeps
// one small record per event (item ids numbered), and sums only when
// written. Offsets it already holds are not added again, so a batch
// retried after a failed ApplyUsers is counted once.
type ItemWork struct {
	partition int32
	ids       map[string]uint32 // item -> number, for this window
	names     []string
	evs       []workEvent // offset order
	exp       []expEvent  // experiment counter increments, offset order
	events    int         // events added (erased ones too)
	last      int64       // highest offset added
	first     time.Time
}

// workEvent is one applied event's item half: its item gains the user,
// weight (popularity, trending) and, when it made the (user, item) pair
// new, decay (degree) and decay with each of hist in both rows; each of
// prev (the user's distinct earlier items, newest first, next.go) gains a
// transition to it in its next-item row.
type workEvent struct {
	off    int64
	ts     int64
	weight float64
	decay  float64
	user   string
	item   uint32
	bought uint32 // the item's purchase name (next.go), when the event is a purchase
	isNew  bool
	isBuy  bool
	hist   []uint32
	prev   []uint32
}

// NewItemWork returns an empty ItemWork for partition.
func NewItemWork(partition int32) *ItemWork {
	return &ItemWork{partition: partition, ids: make(map[string]uint32), last: -1}
}

// Events is the number of events whose item half w holds.
func (w *ItemWork) Events() int { return w.events }

// Since is when w got its first event since it was last written (zero
// when empty).
func (w *ItemWork) Since() time.Time { return w.first }

func (w *ItemWork) id(item string) uint32 {
	n, ok := w.ids[item]
	if !ok {
		n = uint32(len(w.names))
		w.ids[item] = n
		w.names = append(w.names, item)
	}
	return n
}

// count counts an event that adds nothing (its user was erased).
func (w *ItemWork) count() {
	if w.events == 0 {
		w.first = time.Now()
	}
	w.events++
}

func (w *ItemWork) add(op Op, weight, decay float64, isNew bool, hist, prev []string) {
	w.count()
	e := workEvent{off: op.Offset, ts: op.TS, weight: weight, decay: decay, user: op.User, item: w.id(op.Item), isNew: isNew}
	e.hist = w.numbers(hist)
	e.prev = w.numbers(prev)
	if len(prev) > 0 && op.Type == event.Purchase {
		e.isBuy, e.bought = true, w.id(boughtName(op.Item))
	}
	w.evs = append(w.evs, e)
}

// numbers returns the numbers of items (nil for none).
func (w *ItemWork) numbers(items []string) []uint32 {
	if len(items) == 0 {
		return nil
	}
	out := make([]uint32, len(items))
	for i, it := range items {
		out[i] = w.id(it)
	}
	return out
}

func (w *ItemWork) reset() {
	clear(w.ids)
	w.names = w.names[:0]
	w.evs = w.evs[:0]
	w.exp = w.exp[:0]
	w.events = 0
	w.first = time.Time{}
}

// itemSum is what an item gains from the events of w after its fence.
type itemSum struct {
	first, last int64
	pop, deg    float64
	maxts       int64
	users       []userTS // recent users, each once, in the order first met
	co          coSum    // co-occurrence increments, by item number
	next        coSum    // next-item transition increments, by item number
}

type userTS struct {
	user string
	ts   int64 // of the user's last event (by offset), as one ZADD each would leave it
}

func (g *itemSum) addUser(u string, ts int64) {
	for i := range g.users {
		if g.users[i].user == u {
			g.users[i].ts = ts
			return
		}
	}
	g.users = append(g.users, userTS{u, ts})
}

// coSum sums values by item number (ItemWork's numbering), in the order
// the items are first met, as coocRow does by name: an item's
// co-occurrence increments, and a window's trending weights. Most
// co-occurrence sums hold a few items: they are found by a linear scan,
// and through a map once there are more than coSumScan (a map by name was
// a tenth of the ingest process's CPU, docs/benchmarks.md 28).
type coSum struct {
	ids  []uint32
	vals []float64
	at   map[uint32]int32 // index in ids, once len(ids) > coSumScan
}

const coSumScan = 16

func (c *coSum) add(id uint32, d float64) {
	if c.at != nil {
		if k, ok := c.at[id]; ok {
			c.vals[k] += d
			return
		}
	} else {
		for k, x := range c.ids {
			if x == id {
				c.vals[k] += d
				return
			}
		}
	}
	c.ids = append(c.ids, id)
	c.vals = append(c.vals, d)
	if c.at != nil {
		c.at[id] = int32(len(c.ids) - 1)
	} else if len(c.ids) > coSumScan {
		c.at = make(map[uint32]int32, 2*len(c.ids))
		for k, x := range c.ids {
			c.at[x] = int32(k)
		}
	}
}

// index returns w's items in the order they are first met (each event's
// item, then its history) and, per item, the events that add to it, in
// offset order.
func (w *ItemWork) index() (order []uint32, touch [][]int32) {
	touch = make([][]int32, len(w.names))
	order = make([]uint32, 0, len(w.names))
	met := func(it uint32, i int) {
		if touch[it] == nil {
			order = append(order, it)
		}
		touch[it] = append(touch[it], int32(i))
	}
	for i := range w.evs {
		e := &w.evs[i]
		met(e.item, i)
		for _, h := range e.hist {
			met(h, i)
		}
		for _, h := range e.prev {
			if !slices.Contains(e.hist, h) {
				met(h, i) // each item once per event
			}
		}
	}
	return order, touch
}

// sums sums, for each of items, what w's events past after[item] (all
// when absent) add to it.
func (w *ItemWork) sums(items []uint32, after map[uint32]int64, touch [][]int32) map[uint32]*itemSum {
	out := make(map[uint32]*itemSum, len(items))
	for _, it := range items {
		f, ok := after[it]
		if !ok {
			f = -1
		}
		var g *itemSum
		for _, i := range touch[it] {
			e := &w.evs[i]
			if e.off <= f {
				continue
			}
			if g == nil {
				g = &itemSum{first: e.off}
				out[it] = g
			}
			g.last = e.off
			if e.item != it { // it is in the event's history, its prev or both
				if slices.Contains(e.hist, it) {
					g.co.add(e.item, e.decay)
				}
				if k := slices.Index(e.prev, it); k >= 0 {
					v := e.weight * closeness(k)
					g.next.add(e.item, v)
					if e.isBuy {
						g.next.add(e.bought, v)
					}
				}
				continue
			}
			g.addUser(e.user, e.ts)
			g.maxts = max(g.maxts, e.ts)
			g.pop += e.weight
			if e.isNew {
				g.deg += e.decay
			}
			for _, h := range e.hist {
				g.co.add(h, e.decay)
			}
		}
	}
	return out
}

// ApplyItems writes w: one script per item and one for trending, in
// pipelines of at most itemChunk scripts (and again for items whose fence
// lay inside w's offsets), then folds the co-occurrence rows it made long. On success w
// is empty again; on failure it is kept, and calling ApplyItems again is
// safe: every item and trending skip the offsets they already applied.
func (s *Store) ApplyItems(ctx context.Context, w *ItemWork) error {
	if len(w.evs) == 0 && len(w.exp) == 0 {
		w.reset()
		return nil
	}
	p := strconv.Itoa(int(w.partition))
	ttl := strconv.FormatInt(int64(s.opt.UserTTL/time.Second), 10)
	now := strconv.FormatInt(s.opt.Now().Unix(), 10)
	order, touch := w.index()
	// One job per item, and one for trending, in pipelines of at most
	// itemChunk jobs, each chunk's items summed just before it is sent (so
	// that a large window's sums and arguments are not all in memory at
	// once); a job that answers a fence inside its offsets is sent again
	// with the sums past it.
	rowLen := make(map[uint32]int64, len(order))
	nextLen := make(map[uint32]int64)
	trendAfter, expAfter := int64(-1), int64(-1)
	todo, after, trend, exp := order, map[uint32]int64(nil), len(w.evs) > 0, len(w.exp) > 0
	for len(todo) > 0 || trend || exp {
		again := map[uint32]int64{}
		var next []uint32
		for start := 0; start == 0 || start < len(todo); start += itemChunk {
			chunk := todo[min(start, len(todo)):min(start+itemChunk, len(todo))]
			sums := w.sums(chunk, after, touch)
			// Jobs: the chunk's items, then trending and the experiment
			// counters with the first chunk.
			withTrend, withExp := trend && start == 0, exp && start == 0
			n := len(chunk)
			trendAt, expAt := -1, -1
			if withTrend {
				trendAt = n
				n++
			}
			if withExp {
				expAt = n
				n++
			}
			cmds, err := s.runScripts(ctx, s.item, n, func(pipe redis.Pipeliner, k int) *redis.Cmd {
				switch k {
				case trendAt:
					return s.trend.EvalSha(ctx, pipe, []string{s.keys.Trending(), s.keys.TrendingFence()}, s.trendingArgs(p, w, trendAfter)...)
				case expAt:
					return experimentScript.EvalSha(ctx, pipe, []string{s.keys.Experiment(), s.keys.ExperimentFence()}, w.experimentArgs(p, expAfter)...)
				}
				it := w.names[chunk[k]]
				return s.item.EvalSha(ctx, pipe, []string{s.keys.ItemUsers(it), s.keys.ItemCooc(it), s.keys.ItemMeta(it), s.keys.ItemNext(it)}, s.itemArgs(w.partition, ttl, now, sums[chunk[k]], w.names)...)
			})
			if err != nil {
				return fmt.Errorf("applying item state: %w", err)
			}
			for k, c := range cmds {
				status, val, val2, err := fencedAnswer(c)
				if err != nil {
					return fmt.Errorf("applying item state: %w", err)
				}
				switch k {
				case trendAt:
					trend = status == 2 // the fence only grows, so this ends
					trendAfter = val
					continue
				case expAt:
					exp = status == 2
					expAfter = val
					continue
				}
				switch status {
				case 1:
					rowLen[chunk[k]] = val
					nextLen[chunk[k]] = val2
				case 2:
					again[chunk[k]] = val
					next = append(next, chunk[k])
				}
			}
		}
		todo, after = next, again
	}
	// Rows whose lists this made long are folded now (cooc.go).
	var fold, foldNext []string
	for _, it := range order {
		if rowLen[it] > int64(s.opt.CoocFold) {
			fold = append(fold, w.names[it])
		}
		if nextLen[it] > int64(s.opt.CoocFold) {
			foldNext = append(foldNext, w.names[it])
		}
	}
	if err := s.FoldCooc(ctx, fold); err != nil {
		return err
	}
	if err := s.FoldNext(ctx, foldNext); err != nil {
		return err
	}
	w.reset()
	return nil
}

// itemArgs returns item.lua's arguments for an item's sums: the
// popularity and degree added, the recent users' newest and oldest event
// times, the row entry, the next-item row entry and the recent users.
func (s *Store) itemArgs(partition int32, ttl, now string, g *itemSum, names []string) []any {
	p := strconv.Itoa(int(partition))
	entry, next := "", ""
	if len(g.co.ids) > 0 {
		entry = deltaEntry(partition, g.first, g.last, &g.co, names)
	}
	if len(g.next.ids) > 0 {
		next = deltaEntry(partition, g.first, g.last, &g.next, names)
	}
	num := func(f float64) string {
		if f == 0 {
			return ""
		}
		return fmtFloat(f)
	}
	mints := int64(0)
	for i, u := range g.users {
		if i == 0 || u.ts < mints {
			mints = u.ts
		}
	}
	args := make([]any, 0, 12+2*len(g.users))
	args = append(args, p, s.opt.ItemUsersCap, ttl, now, g.first, g.last, num(g.pop), num(g.deg), g.maxts, mints, entry, next)
	for _, u := range g.users {
		args = append(args, u.ts, u.user)
	}
	return args
}

// trendingArgs returns trending.lua's arguments for w's events after
// offset after: their weights summed per item.
func (s *Store) trendingArgs(p string, w *ItemWork, after int64) []any {
	var sum coSum
	first, last := int64(-1), int64(-1)
	for i := range w.evs {
		e := &w.evs[i]
		if e.off <= after {
			continue
		}
		if first < 0 {
			first = e.off
		}
		last = e.off
		sum.add(e.item, e.weight)
	}
	args := make([]any, 0, 4+2*len(sum.ids))
	args = append(args, p, s.opt.TrendingCap, first, last)
	for k, it := range sum.ids {
		args = append(args, w.names[it], fmtFloat(sum.vals[k]))
	}
	return args
}

// fencedAnswer reads item.lua's or trending.lua's answer: a status and a
// row length or fence, and item.lua's next-item row length (0 for none).
func fencedAnswer(c *redis.Cmd) (status, val, val2 int64, err error) {
	v, err := c.Slice()
	if err != nil {
		return 0, 0, 0, err
	}
	if len(v) != 2 && len(v) != 3 {
		return 0, 0, 0, errors.New("malformed script answer")
	}
	status, ok1 := v[0].(int64)
	val, ok2 := v[1].(int64)
	if !ok1 || !ok2 {
		return 0, 0, 0, errors.New("malformed script answer")
	}
	if len(v) == 3 {
		if val2, ok2 = v[2].(int64); !ok2 {
			return 0, 0, 0, errors.New("malformed script answer")
		}
	}
	return status, val, val2, nil
}
