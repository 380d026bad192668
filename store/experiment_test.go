package store_test

import (
	"context"
	"math/rand/v2"
	"reflect"
	"sort"
	"strconv"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/store"
)

const attrWindow = 30 * time.Minute

var attrStart = time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC)

// attrLog makes a log over nparts partitions that exercises attribution:
// planted experiment visits (variants a and b), clicks, carts and
// purchases of items shown long ago (outside the window), clicks repeated
// on one showing, impressions without a variant and with an item twice,
// and users without impressions whose current list (listUsers) holds the
// items they click.
func attrLog(seed uint64, n, nparts int) (log []partitioned, lists map[string]store.List) {
	x := loadgen.NewExperiment(loadgen.ExperimentOptions{Users: 40, Items: 60, ListLen: 6, CTR: []float64{0.15, 0.3}, Seed: seed, Start: attrStart, Step: 20 * time.Second})
	rng := rand.New(rand.NewPCG(seed, 99))
	lists = map[string]store.List{}
	var evs []event.Event
	ts := func() int64 { return evs[len(evs)-1].TS + 1000 }
	for len(evs) < n {
		visit := x.Visit()
		evs = append(evs, visit...)
		switch rng.IntN(8) {
		case 0: // the same shown item clicked again, and bought
			if len(visit) > 1 && visit[1].Type == event.Click {
				e := visit[1]
				e.TS = ts()
				evs = append(evs, e)
				e.Type, e.Value, e.TS = event.Purchase, 12.5, e.TS+1
				evs = append(evs, e)
			}
		case 1: // an impression without a variant, one item twice
			u := visit[0].UserID
			evs = append(evs, event.Event{UserID: u, Type: event.Impression, TS: ts(), Shown: &event.Shown{Items: []string{"i1", "i2", "i1"}}})
			evs = append(evs, event.Event{UserID: u, ItemID: "i1", Type: event.Click, TS: ts()})
		case 2: // a list user clicks, carts and buys
			u := "L" + strconv.Itoa(rng.IntN(6))
			l, ok := lists[u]
			if !ok {
				l = store.List{Version: 1, User: u, Variant: []string{"a", "b"}[rng.IntN(2)], EventTS: ts() - 5000}
				for k := 0; k < 5; k++ {
					l.Items = append(l.Items, store.ListItem{Item: loadgen.ItemID(rng.IntN(60)), Source: loadgen.Sources[k%3]})
				}
				lists[u] = l
			}
			it := l.Items[rng.IntN(len(l.Items))].Item
			if rng.IntN(3) == 0 {
				it = loadgen.ItemID(rng.IntN(60)) // maybe not in the list
			}
			typ := []event.Type{event.Click, event.AddToCart, event.Purchase, event.Click}[rng.IntN(4)]
			evs = append(evs, event.Event{UserID: u, ItemID: it, Type: typ, TS: ts(), Value: 3})
		case 3: // time passes: earlier showings leave the window
			evs[len(evs)-1].TS += int64(attrWindow / time.Millisecond)
		}
	}
	// Event time must not go backwards per user after the jumps above.
	last := int64(0)
	for i := range evs {
		if evs[i].TS <= last {
			evs[i].TS = last + 1
		}
		last = evs[i].TS
	}
	log = make([]partitioned, nparts)
	for p := range log {
		log[p].p = int32(p)
	}
	for _, ev := range evs {
		h := 0
		for _, c := range ev.UserID {
			h = h*31 + int(c)
		}
		p := (h%nparts + nparts) % nparts
		log[p].ops = append(log[p].ops, store.Op{Offset: int64(len(log[p].ops)), User: ev.UserID, Item: ev.ItemID, Type: ev.Type, TS: ev.TS, Value: ev.Value, Shown: ev.Shown})
	}
	return log, lists
}

// refShowing is one showing of an item to a user in the reference.
type refShowing struct {
	item, variant, src, via string
	ts                      int64
	pos                     int
	at                      int // index in the user's history when it was made
}

// attrReference is the brute-force reference of attribution: for every
// event it scans the user's whole history for the item's latest showing
// and for earlier events attributed to it, and sums the counters per
// variant from per-user totals at the end.
func attrReference(log []partitioned, lists map[string]store.List, window time.Duration) []experiment.Counts {
	w := window.Milliseconds()
	type attributed struct {
		showing *refShowing
		kind    event.Type
	}
	by := map[string]*experiment.Counts{}
	get := func(v string) *experiment.Counts {
		if by[v] == nil {
			by[v] = &experiment.Counts{Variant: v, BySource: map[string]experiment.Cell{}, ByPosition: map[string]experiment.Cell{}}
		}
		return by[v]
	}
	type userVar struct{ n, x float64 }
	per := map[string]map[string]*userVar{} // user -> variant -> totals
	flags := map[string]bool{}              // user|variant|kind
	hist := map[string][]store.Op{}
	showings := map[string][]*refShowing{}
	attr := map[string][]attributed{}
	cell := func(m map[string]experiment.Cell, k string, f func(*experiment.Cell)) {
		c := m[k]
		f(&c)
		m[k] = c
	}
	for _, pl := range log {
		for _, op := range pl.ops {
			u := op.User
			at := len(hist[u])
			hist[u] = append(hist[u], op)
			if op.Type == event.Impression {
				v := op.Shown.Variant
				c := get(v)
				c.Impressions++
				if per[u] == nil {
					per[u] = map[string]*userVar{}
				}
				if per[u][v] == nil {
					per[u][v] = &userVar{}
					c.Users++
				}
				met := map[string]bool{}
				for i, it := range op.Shown.Items {
					if met[it] {
						continue
					}
					met[it] = true
					src := op.Shown.Sources
					s := ""
					if len(src) > 0 {
						s = src[i]
					}
					showings[u] = append(showings[u], &refShowing{item: it, variant: v, src: s, via: "i", ts: op.TS, pos: i + 1, at: at})
					c.Shown++
					per[u][v].n++
					cell(c.BySource, s, func(x *experiment.Cell) { x.Shown++ })
					cell(c.ByPosition, strconv.Itoa(i+1), func(x *experiment.Cell) { x.Shown++ })
				}
				continue
			}
			if op.Type == event.Browse {
				continue
			}
			var latest *refShowing
			for _, s := range showings[u] {
				if s.item == op.Item {
					latest = s
				}
			}
			var got *refShowing
			if latest != nil && latest.ts <= op.TS && op.TS-latest.ts <= w {
				done := false
				for _, a := range attr[u] {
					if a.showing == latest && a.kind == op.Type {
						done = true
					}
				}
				if !done {
					got = latest
				}
			} else {
				newest := int64(-1)
				for _, h := range hist[u][:at] {
					if h.Type == event.Impression && h.TS > newest {
						newest = h.TS
					}
				}
				if l, ok := lists[u]; ok && (newest < 0 || op.TS-newest > w) && l.EventTS <= op.TS && op.TS-l.EventTS <= w {
					for i, li := range l.Items {
						if li.Item == op.Item {
							got = &refShowing{item: op.Item, variant: l.Variant, src: li.Source, via: "l", ts: l.EventTS, pos: i + 1, at: at}
							showings[u] = append(showings[u], got)
							break
						}
					}
				}
			}
			if got == nil {
				continue
			}
			attr[u] = append(attr[u], attributed{got, op.Type})
			c := get(got.variant)
			pos := strconv.Itoa(got.pos)
			if got.via == "l" {
				switch op.Type {
				case event.Click:
					c.ListClicks++
				case event.AddToCart:
					c.ListCarts++
				case event.Purchase:
					c.ListPurchases++
					c.ListValue += op.Value
				}
				continue
			}
			key := u + "|" + got.variant + "|" + op.Type.String()
			first := !flags[key]
			flags[key] = true
			one := func(x *experiment.Cell) {
				switch op.Type {
				case event.Click:
					x.Clicks++
				case event.AddToCart:
					x.Carts++
				case event.Purchase:
					x.Purchases++
				}
			}
			cell(c.BySource, got.src, one)
			cell(c.ByPosition, pos, one)
			switch op.Type {
			case event.Click:
				c.Clicks++
				per[u][got.variant].x++
				if first {
					c.ClickUsers++
				}
			case event.AddToCart:
				c.Carts++
				if first {
					c.CartUsers++
				}
			case event.Purchase:
				c.Purchases++
				c.Value += op.Value
				if first {
					c.BuyUsers++
				}
			}
		}
	}
	for _, vs := range per {
		for v, t := range vs {
			c := get(v)
			c.N2 += t.n * t.n
			c.NX += t.n * t.x
			c.X2 += t.x * t.x
		}
	}
	var out []experiment.Counts
	for _, c := range by {
		out = append(out, *c)
	}
	sort.Slice(out, func(i, j int) bool { return out[i].Variant < out[j].Variant })
	return out
}

func attrStore(t *testing.T, rdb redis.UniversalClient) *store.Store {
	opt := bigCaps()
	opt.Attribution.Window = attrWindow
	return store.New(rdb, opt)
}

func writeLists(t *testing.T, st *store.Store, lists map[string]store.List) {
	t.Helper()
	var ls []store.List
	for _, l := range lists {
		ls = append(ls, l)
	}
	if err := st.WriteLists(context.Background(), ls, time.Hour); err != nil {
		t.Fatal(err)
	}
}

func checkAttribution(t *testing.T, st *store.Store, log []partitioned, lists map[string]store.List) []experiment.Counts {
	t.Helper()
	fields, err := st.ReadExperiment(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	got := experiment.FromFields(fields, nil)
	sort.Slice(got, func(i, j int) bool { return got[i].Variant < got[j].Variant })
	want := attrReference(log, lists, attrWindow)
	// Empty cells are absent from the store's counters.
	for _, cs := range [][]experiment.Counts{got, want} {
		for _, c := range cs {
			for _, m := range []map[string]experiment.Cell{c.BySource, c.ByPosition} {
				for k, v := range m {
					if v == (experiment.Cell{}) {
						delete(m, k)
					}
				}
			}
		}
	}
	if !reflect.DeepEqual(got, want) {
		t.Errorf("experiment counters differ from the reference:\n got %+v\nwant %+v", got, want)
	}
	var clicks, imps float64
	for _, c := range want {
		clicks += c.Clicks
		imps += c.Impressions
	}
	if clicks < 50 || imps < 100 {
		t.Fatalf("the log attributes too little to test: %v clicks, %v impressions", clicks, imps)
	}
	return want
}

func TestAttributionMatchesReference(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := attrStore(t, rdb)
	log, lists := attrLog(5, 4000, 3)
	writeLists(t, st, lists)
	applyInBatches(t, st, log, rand.New(rand.NewPCG(1, 2)), 200)
	want := checkAttribution(t, st, log, lists)
	var listClicks float64
	for _, c := range want {
		listClicks += c.ListClicks + c.ListCarts + c.ListPurchases
	}
	if listClicks == 0 {
		t.Errorf("nothing attributed through a list")
	}
	// Attribution off: no counters, no attribution state.
	rdb2 := redistest.Start(t).Client(t)
	off := store.New(rdb2, bigCaps())
	applyInBatches(t, off, log, rand.New(rand.NewPCG(1, 2)), 200)
	if n, err := rdb2.Exists(context.Background(), off.Keys().Experiment(), off.Keys().UserShown("u1"), off.Keys().UserAttribution("u1")).Result(); err != nil || n != 0 {
		t.Errorf("attribution off: %d attribution keys, %v", n, err)
	}
}

// A replay after crashes between the user and the item phases, with other
// batch boundaries and batches applied twice, attributes nothing twice and
// loses nothing: the counters equal one clean pass's (the reference).
func TestAttributionReplayCountsOnce(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	st := attrStore(t, rdb)
	log, lists := attrLog(9, 4000, 2)
	writeLists(t, st, lists)
	ctx := context.Background()
	rng := rand.New(rand.NewPCG(3, 4))
	for _, pl := range log {
		for i := 0; i < len(pl.ops); {
			j := min(i+1+rng.IntN(60), len(pl.ops))
			switch rng.IntN(3) {
			case 0:
				st.FailAfterUsers()
				if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err == nil {
					t.Fatal("simulated crash did not fail")
				}
				from := max(0, i-rng.IntN(20))
				if _, err := st.Apply(ctx, pl.p, pl.ops[from:j]); err != nil {
					t.Fatal(err)
				}
			case 1:
				for k := 0; k < 2; k++ {
					if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err != nil {
						t.Fatal(err)
					}
				}
			default:
				if _, err := st.Apply(ctx, pl.p, pl.ops[i:j]); err != nil {
					t.Fatal(err)
				}
			}
			i = j
		}
	}
	checkAttribution(t, st, log, lists)
}

// The user's shown items are capped at shown_cap, newest kept.
func TestShownCap(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	opt := bigCaps()
	opt.Attribution = store.AttributionOptions{Window: time.Hour, ShownCap: 5}
	st := store.New(rdb, opt)
	ts := attrStart.UnixMilli()
	var ops []store.Op
	for k := 0; k < 4; k++ {
		ops = append(ops, store.Op{Offset: int64(k), User: "u", Type: event.Impression, TS: ts + int64(k),
			Shown: &event.Shown{Items: []string{"a" + strconv.Itoa(k), "b" + strconv.Itoa(k), "c" + strconv.Itoa(k)}}})
	}
	if _, err := st.Apply(context.Background(), 0, ops); err != nil {
		t.Fatal(err)
	}
	shown, err := st.ReadShown(context.Background(), "u")
	if err != nil {
		t.Fatal(err)
	}
	var items []string
	for _, s := range shown {
		items = append(items, s.Item)
	}
	sort.Strings(items)
	if want := []string{"a3", "b2", "b3", "c2", "c3"}; !reflect.DeepEqual(items, want) {
		t.Errorf("shown after the cap: %v, want %v", items, want)
	}
	if n, _ := rdb.ZCard(context.Background(), st.Keys().UserShownAt("u")).Result(); n != 5 {
		t.Errorf("shown zset holds %d", n)
	}
}

// Erasure removes the user's shown items and attribution log with the rest
// of the user's state.
func TestForgetRemovesAttributionState(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	st := attrStore(t, rdb)
	ctx := context.Background()
	ts := time.Now().Add(-time.Minute).UnixMilli()
	ops := []store.Op{
		{Offset: 0, User: "u", Type: event.Impression, TS: ts, Shown: &event.Shown{Items: []string{"a", "b"}, Variant: "a"}},
		{Offset: 1, User: "u", Item: "a", Type: event.Click, TS: ts + 1},
	}
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	k := st.Keys()
	keys := []string{k.UserShownAt("u"), k.UserShown("u"), k.UserAttribution("u")}
	if n := rdb.Exists(ctx, keys...).Val(); n != 3 {
		t.Fatalf("%d of the attribution keys exist before the erasure", n)
	}
	if _, err := st.Forget(ctx, "u", store.ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	if n := rdb.Exists(ctx, keys...).Val(); n != 0 {
		t.Errorf("%d attribution keys left after the erasure", n)
	}
}

// A user whose first call holds only impressions (no weights or log
// written) still gets TTLs on the weights and log written by a later call
// before the next renewal, as when both came in one call.
func TestImpressionFirstKeepsTTLs(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	opt := bigCaps()
	opt.UserTTL = time.Hour
	opt.Attribution.Window = time.Hour
	st := store.New(rdb, opt)
	ctx := context.Background()
	ts := time.Now().UnixMilli()
	for i, op := range []store.Op{
		{User: "u", Type: event.Impression, TS: ts, Shown: &event.Shown{Items: []string{"a"}}},
		{User: "u", Item: "a", Type: event.Click, TS: ts + 1},
		{User: "u", Item: "b", Type: event.Purchase, TS: ts + 2},
	} {
		op.Offset = int64(i)
		if _, err := st.Apply(ctx, 0, []store.Op{op}); err != nil {
			t.Fatal(err)
		}
	}
	k := st.Keys()
	for _, key := range []string{k.UserState("u"), k.UserMeta("u"), k.UserShown("u"), k.UserShownAt("u"), k.UserAttribution("u")} {
		if d := rdb.TTL(ctx, key).Val(); d <= 0 {
			t.Errorf("%s: TTL %v", key, d)
		}
	}
}
