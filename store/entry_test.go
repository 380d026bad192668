package store

import (
	"context"
	"errors"
	"math"
	"reflect"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
)

// pairBytes is a binary (name, value) pair of a row entry, written out.
func pairBytes(name string, v float64) string {
	b := []byte{byte(len(name))} // names here are shorter than 128 bytes
	b = append(b, name...)
	var f [8]byte
	bits := math.Float64bits(v)
	for i := range f {
		f[i] = byte(bits >> (8 * i))
	}
	return string(append(b, f[:]...))
}

// The wire formats, pinned: each append writes these bytes, and each
// parse reads them back.
func TestEntryFormats(t *testing.T) {
	log := LoggedEvent{Offset: 12, Partition: 3, Type: "click", TS: 1700, New: true, Item: "a|b"}
	att := attEntry{Offset: 7, Partition: 1, Record: "i|a|1|9|0"}
	imp := impressionRecord{Variant: "a", First: true, DN2: 9, DNX: 0}
	attr := attributedRecord{Type: "purchase", Variant: "b", Via: "l", Source: "item_knn", Position: 2, First: false, DX2: 3, DNX: 40}
	shown := ShownItem{TS: 1700, Unseen: 2, Done: 5, Pos: 1, Via: "i", Variant: "a", Source: "x|y"}
	delta := rowDeltaEntry{Partition: 3, First: 5, Last: 9, Pairs: []Scored{{ID: "c", Score: 0.5}, {ID: "d", Score: 3}}}
	ev := rowEventEntry{Partition: 0, Offset: 1, Value: 0.5, Items: []string{"a", "b"}}
	erasure := rowErasureEntry{Erasure: "x", Pairs: []Scored{{ID: "a", Score: 0.75}, {ID: "b", Score: 0.1}}}
	folded := []Scored{{ID: "b", Score: 3}, {ID: "a", Score: 1}}

	for _, c := range []struct {
		name       string
		got, want  string
		parse      func(string) (any, error)
		wantParsed any
	}{
		{"log", string(appendLogEntry(nil, log)), "12|3|click|1700|1|a|b",
			func(s string) (any, error) { return parseLogEntry(s) }, log},
		{"attribution log", string(appendAttEntry(nil, att)), "7|1|i|a|1|9|0",
			func(s string) (any, error) { return parseAttEntry(s) }, att},
		{"impression", string(appendImpressionRecord(nil, imp)), "i|a|1|9|0",
			func(s string) (any, error) { return parseImpressionRecord(s) }, imp},
		{"attributed", string(appendAttributedRecord(nil, attr)), "a|purchase|b|l|item_knn|2|0|3|40",
			func(s string) (any, error) { return parseAttributedRecord(s) }, attr},
		{"shown", string(appendShownValue(nil, shown)), "1700|2|5|1|i|a|x|y",
			func(s string) (any, error) { return parseShownValue(s) }, shown},
		{"delta", string(appendDelta(nil, delta)), "d3:5-9|" + pairBytes("c", 0.5) + pairBytes("d", 3),
			func(s string) (any, error) { return parseDelta(s, nil) }, delta},
		{"per-event", string(appendEvent(nil, ev)), "c0:1|0.5|a\nb",
			func(s string) (any, error) { return parseEvent(s, nil) }, ev},
		{"erasure", string(appendErasure(nil, erasure)), "ex|a\t0.75\nb\t0.10000000000000001",
			func(s string) (any, error) { return parseErasure(s, nil) }, erasure},
		{"folded", string(appendFolded(nil, folded)), "s" + pairBytes("b", 3) + pairBytes("a", 1),
			func(s string) (any, error) { return parseFolded(s, nil) }, folded},
	} {
		if c.got != c.want {
			t.Errorf("%s: appended %q, want %q", c.name, c.got, c.want)
		}
		p, err := c.parse(c.want)
		if err != nil || !reflect.DeepEqual(p, c.wantParsed) {
			t.Errorf("%s: parsed %q as %+v (%v), want %+v", c.name, c.want, p, err, c.wantParsed)
		}
	}
	if got := countPairs("d3:5-9|" + pairBytes("c", 0.5) + pairBytes("d", 3)); got != 2 {
		t.Errorf("countPairs = %d, want 2", got)
	}
	if it, ok := cutBought(boughtName("i|1")); it != "i|1" || !ok {
		t.Errorf("cutBought(boughtName) = %q, %v", it, ok)
	}
	if _, ok := cutBought("i1"); ok {
		t.Error("cutBought(item) reports a purchase name")
	}
}

// Malformed entries are errors (wrapping errEntry), never panics.
func TestEntryParseErrors(t *testing.T) {
	p := pairBytes("a", 1)
	for _, c := range []struct {
		name  string
		parse func(string) error
		bad   []string
	}{
		{"log", func(s string) error { _, err := parseLogEntry(s); return err },
			[]string{"", "garbage", "1|2|click|3|1", "x|2|click|3|1|a", "1|x|click|3|1|a", "1|2|click|x|1|a", "1|2|click|3|2|a", "1|99999999999|click|3|1|a"}},
		{"log item", func(s string) error { _, err := logEntryItem(s); return err },
			[]string{"", "garbage", "1|2|click|3|1"}},
		{"attribution log", func(s string) error { _, err := parseAttEntry(s); return err },
			[]string{"", "1|2", "x|2|i|a|1|1|1", "1|x|i"}},
		{"impression", func(s string) error { _, err := parseImpressionRecord(s); return err },
			[]string{"", "i|a|1|1", "i|a|1|1|1|1", "a|a|1|1|1", "i|a|2|1|1", "i|a|1|x|1", "i|a|1|1|1.5"}},
		{"attributed", func(s string) error { _, err := parseAttributedRecord(s); return err },
			[]string{"", "a|click|v|i|s|1|1|1", "i|click|v|i|s|1|1|1|1", "a|click|v|i|s|x|1|1|1", "a|click|v|i|s|1|x|1|1", "a|click|v|i|s|1|1|1|x"}},
		{"shown", func(s string) error { _, err := parseShownValue(s); return err },
			[]string{"", "1|2|3|4|i|a", "x|2|3|4|i|a|s", "1|x|3|4|i|a|s", "1|2|x|4|i|a|s", "1|2|3|x|i|a|s"}},
		{"folded", func(s string) error { _, err := parseFolded(s, nil); return err },
			[]string{"", "d", "s\x05ab", "s\xff\xff\xff\xff\xff\xff\xff\xff\xff\x01abcdefgh", "s" + p[:len(p)-1]}},
		{"delta", func(s string) error { _, err := parseDelta(s, nil); return err },
			[]string{"", "s", "d0:4-9" + p, "d0:4-9|\x05ab", "d0:4|" + p, "d:4-9|" + p, "dx:4-9|" + p, "d0:-4-9|" + p, "d0:4-x|" + p, "d-1:4-9|" + p}},
		{"per-event", func(s string) error { _, err := parseEvent(s, nil); return err },
			[]string{"", "c0:1", "c0:1|x|a", "c0:1|1e999|a", "cx:1|1|a", "c0|1|a", "c0:1|1|a\n\nb", "c0:1|1|\n"}},
		{"erasure", func(s string) error { _, err := parseErasure(s, nil); return err },
			[]string{"", "ex", "ex|a", "ex|a\tq", "ex|a\t1\n\nb\t2", "dx|a\t1"}},
	} {
		for _, b := range c.bad {
			if err := c.parse(b); err == nil || !errors.Is(err, errEntry) {
				t.Errorf("%s %q: error %v, want one wrapping errEntry", c.name, b, err)
			}
		}
	}
}

// Entries the store writes (userstate.go: log, attribution log, shown
// items; item.lua, forget_item.lua and cooc_fold.lua: row entries) parse
// with the codecs, and appending what was parsed writes the same bytes.
func TestEntriesWrittenByScriptsParse(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	opt := OptionsFromConfig(config.Default())
	opt.Prefix, opt.UserTTL, opt.CoocFold, opt.Attribution.Window = "g:", 0, 1<<30, time.Hour
	st := New(rdb, opt)
	ts0 := time.Date(2025, 3, 1, 0, 0, 0, 0, time.UTC).UnixMilli()
	// u2 has a list and no impression: its click is attributed via l.
	if err := st.WriteLists(ctx, []List{{User: "u2", GeneratedAt: ts0, Variant: "b", EventTS: ts0,
		Items: []ListItem{{Item: "i|2", Source: "item_knn"}, {Item: "i3", Source: "trending"}}}}, time.Hour); err != nil {
		t.Fatal(err)
	}
	ops := []Op{
		{Offset: 0, User: "u1", Type: event.Impression, TS: ts0 + 1, Shown: &event.Shown{Items: []string{"i1", "i|2"}, Sources: []string{"item_knn", "user_knn"}, Variant: "a"}},
		{Offset: 1, User: "u1", Item: "i1", Type: event.Click, TS: ts0 + 2},
		{Offset: 2, User: "u1", Item: "i|2", Type: event.AddToCart, TS: ts0 + 3},
		{Offset: 3, User: "u1", Item: "i|2", Type: event.Purchase, TS: ts0 + 4, Value: 9.5},
		{Offset: 4, User: "u2", Item: "i|2", Type: event.Click, TS: ts0 + 5},
		{Offset: 5, User: "u2", Item: "i3", Type: event.Browse, TS: ts0 + 6},
		{Offset: 6, User: "u2", Item: "i1", Type: event.Click, TS: ts0 + 7},
		{Offset: 7, User: "u1", Item: "i3", Type: event.Purchase, TS: ts0 + 8},
		{Offset: 8, User: "u3", Item: "i1", Type: event.Click, TS: ts0 + 9},
		{Offset: 9, User: "u3", Item: "i3", Type: event.Click, TS: ts0 + 10},
	}
	if _, err := st.Apply(ctx, 3, ops); err != nil {
		t.Fatal(err)
	}
	items := []string{"i1", "i|2", "i3"}
	k := st.keys

	// User log.
	var logged []LoggedEvent
	for _, u := range []string{"u1", "u2"} {
		b, err := rdb.Get(ctx, k.UserState(u)).Bytes()
		if err != nil {
			t.Fatal(err)
		}
		us, err := DecodeUserState(b)
		if err != nil {
			t.Fatal(err)
		}
		for _, e := range us.Log {
			x, err := parseLogEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			if back := string(appendLogEntry(nil, x)); back != e {
				t.Errorf("log entry %q appended back as %q", e, back)
			}
			logged = append(logged, x)
		}
	}
	if want := (LoggedEvent{Offset: 7, Partition: 3, Type: "purchase", TS: ts0 + 8, New: true, Item: "i3"}); len(logged) != 7 || logged[0] != want {
		t.Errorf("the logs %+v, want 7 entries, u1's newest %+v", logged, want)
	}
	if x := logged[2]; x.Item != "i|2" || x.New != true || x.Offset != 2 {
		t.Errorf("u1's oldest entry %+v", x)
	}

	// Attribution log and records.
	kinds := map[string]int{}
	for _, u := range []string{"u1", "u2"} {
		for _, e := range rdb.LRange(ctx, k.UserAttribution(u), 0, -1).Val() {
			a, err := parseAttEntry(e)
			if err != nil {
				t.Fatal(err)
			}
			if a.Partition != 3 || string(appendAttEntry(nil, a)) != e {
				t.Errorf("attribution log entry %q: %+v, appended back as %q", e, a, appendAttEntry(nil, a))
			}
			var back []byte
			switch entryKind(a.Record) {
			case recImpression:
				r, err := parseImpressionRecord(a.Record)
				if err != nil {
					t.Fatal(err)
				}
				kinds["i"]++
				back = appendImpressionRecord(nil, r)
			case recAttributed:
				r, err := parseAttributedRecord(a.Record)
				if err != nil {
					t.Fatal(err)
				}
				kinds["a"+r.Via]++
				back = appendAttributedRecord(nil, r)
			default:
				t.Fatalf("attribution record %q of unknown kind", a.Record)
			}
			if string(back) != a.Record {
				t.Errorf("attribution record %q appended back as %q", a.Record, back)
			}
		}
	}
	if kinds["i"] != 1 || kinds["ai"] != 3 || kinds["al"] != 1 {
		t.Errorf("attribution records by kind %v, want 1 impression, 3 via i, 1 via l", kinds)
	}

	// Shown items.
	shown := 0
	for _, u := range []string{"u1", "u2"} {
		for f, v := range rdb.HGetAll(ctx, k.UserShown(u)).Val() {
			if strings.HasPrefix(f, " ") {
				continue
			}
			x, err := parseShownValue(v)
			if err != nil {
				t.Fatal(err)
			}
			if back := string(appendShownValue(nil, x)); back != v {
				t.Errorf("shown value %q appended back as %q", v, back)
			}
			shown++
		}
	}
	if shown != 3 {
		t.Errorf("%d shown items, want 3 (i1 and i|2 to u1, i|2 to u2 via its list)", shown)
	}

	// Row entries: deltas now, erasures after forgetting u2, folded rows
	// after folding.
	rowKinds := map[byte]int{}
	checkRows := func() {
		t.Helper()
		for _, it := range items {
			for _, key := range []string{k.ItemCooc(it), k.ItemNext(it)} {
				for _, e := range rdb.LRange(ctx, key, 0, -1).Val() {
					var back []byte
					var err error
					switch entryKind(e) {
					case rowFolded:
						var ps []Scored
						ps, err = parseFolded(e, nil)
						back = appendFolded(nil, ps)
					case rowDelta:
						var d rowDeltaEntry
						d, err = parseDelta(e, nil)
						if d.Partition != 3 || d.First > d.Last {
							t.Errorf("delta %q: header %+v", e, d)
						}
						back = appendDelta(nil, d)
					case rowErasure:
						var x rowErasureEntry
						x, err = parseErasure(e, nil)
						back = appendErasure(nil, x)
					default:
						t.Fatalf("row %s: entry %q of unexpected kind", key, e)
					}
					if err != nil {
						t.Fatal(err)
					}
					if string(back) != e {
						t.Errorf("row %s: entry %q appended back as %q", key, e, back)
					}
					rowKinds[e[0]]++
				}
			}
		}
	}
	checkRows()
	if _, err := st.Forget(ctx, "u2", ForgetOptions{}); err != nil {
		t.Fatal(err)
	}
	checkRows()
	if err := st.FoldCooc(ctx, items); err != nil {
		t.Fatal(err)
	}
	if err := st.FoldNext(ctx, items); err != nil {
		t.Fatal(err)
	}
	checkRows()
	if rowKinds[rowDelta] == 0 || rowKinds[rowErasure] == 0 || rowKinds[rowFolded] == 0 {
		t.Errorf("row entries by kind %v: want deltas, erasures and folded rows", rowKinds)
	}
}

// sameScored reports whether a and b hold the same names and values (to
// the bit: NaN equals NaN).
func sameScored(a, b []Scored) bool {
	if len(a) != len(b) {
		return false
	}
	for i := range a {
		if a[i].ID != b[i].ID || math.Float64bits(a[i].Score) != math.Float64bits(b[i].Score) {
			return false
		}
	}
	return true
}

func FuzzLogEntry(f *testing.F) {
	for _, s := range []string{"12|3|click|1700|1|sku-9", "12|3|click|1700|0|a|b|c", "12|3|click|1700|1|", "garbage", "-1|+2|x|007|0|"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseLogEntry(s)
		if err != nil {
			return
		}
		if it, err := logEntryItem(s); err != nil || it != e.Item {
			t.Fatalf("%q parsed with item %q, logEntryItem %q (%v)", s, e.Item, it, err)
		}
		b := appendLogEntry(nil, e)
		e2, err := parseLogEntry(string(b))
		if err != nil || e2 != e {
			t.Fatalf("%q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, e, b, e2, err)
		}
	})
}

func FuzzAttEntry(f *testing.F) {
	for _, s := range []string{"7|1|i|a|1|9|0", "7|1|a|click|v|i|s|1|1|1|1", "7|1|", "x"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		e, err := parseAttEntry(s)
		if err != nil {
			return
		}
		b := appendAttEntry(nil, e)
		e2, err := parseAttEntry(string(b))
		if err != nil || e2 != e {
			t.Fatalf("%q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, e, b, e2, err)
		}
	})
}

func FuzzAttRecord(f *testing.F) {
	for _, s := range []string{"i|a|1|9|0", "i||0|0|0", "a|purchase|b|l|item_knn|2|0|3|40", "a|click||i||1|1|1|1", "i|a|1|9", "a"} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		if r, err := parseImpressionRecord(s); err == nil {
			b := appendImpressionRecord(nil, r)
			if r2, err := parseImpressionRecord(string(b)); err != nil || r2 != r {
				t.Fatalf("%q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, r, b, r2, err)
			}
		}
		if r, err := parseAttributedRecord(s); err == nil {
			b := appendAttributedRecord(nil, r)
			if r2, err := parseAttributedRecord(string(b)); err != nil || r2 != r {
				t.Fatalf("%q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, r, b, r2, err)
			}
		}
		expAdds(Op{Shown: &event.Shown{Items: []string{"a", "a", "b"}}}, s)
	})
}

func FuzzShownValue(f *testing.F) {
	for _, s := range []string{"1700|2|5|1|i|a|x|y", "1|0|0|1|l||", "1|2|3", ""} {
		f.Add(s)
	}
	f.Fuzz(func(t *testing.T, s string) {
		x, err := parseShownValue(s)
		if err != nil {
			return
		}
		b := appendShownValue(nil, x)
		x2, err := parseShownValue(string(b))
		if err != nil || x2 != x {
			t.Fatalf("%q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, x, b, x2, err)
		}
	})
}

// FuzzRowEntry parses any entry as each kind of row entry, and folds and
// ranks rows holding it: no panic, and what parses appends back to an
// entry that parses the same.
func FuzzRowEntry(f *testing.F) {
	p := pairBytes("a", 1) + pairBytes("b|c", math.NaN())
	for _, s := range []string{"s" + p, "d3:5-9|" + p, "c0:1|0.5|a\nb", "ex|a\t0.75\nb\t0.5", "s\x05ab", "d0:4-9", "c0:1|x|a", "ex|a", "", "q"} {
		f.Add(s)
	}
	folded := appendFolded(nil, []Scored{{ID: "b", Score: 3}, {ID: "a", Score: 1}})
	f.Fuzz(func(t *testing.T, s string) {
		if ps, err := parseFolded(s, nil); err == nil {
			b := appendFolded(nil, ps)
			if ps2, err := parseFolded(string(b), nil); err != nil || !sameScored(ps, ps2) || countPairs(s) != len(ps) {
				t.Fatalf("folded %q parsed as %v, appended as %q, parsed again as %v (%v)", s, ps, b, ps2, err)
			}
		}
		if d, err := parseDelta(s, nil); err == nil {
			b := appendDelta(nil, d)
			d2, err := parseDelta(string(b), nil)
			if err != nil || d2.Partition != d.Partition || d2.First != d.First || d2.Last != d.Last || !sameScored(d.Pairs, d2.Pairs) || countPairs(s) != len(d.Pairs) {
				t.Fatalf("delta %q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, d, b, d2, err)
			}
		}
		if c, err := parseEvent(s, nil); err == nil {
			b := appendEvent(nil, c)
			c2, err := parseEvent(string(b), nil)
			if err != nil || c2.Partition != c.Partition || c2.Offset != c.Offset || math.Float64bits(c2.Value) != math.Float64bits(c.Value) || !reflect.DeepEqual(c.Items, c2.Items) {
				t.Fatalf("per-event %q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, c, b, c2, err)
			}
		}
		if x, err := parseErasure(s, nil); err == nil {
			b := appendErasure(nil, x)
			x2, err := parseErasure(string(b), nil)
			if err != nil || x2.Erasure != x.Erasure || !sameScored(x.Pairs, x2.Pairs) {
				t.Fatalf("erasure %q parsed as %+v, appended as %q, parsed again as %+v (%v)", s, x, b, x2, err)
			}
		}
		for _, row := range [][]string{{s}, {string(folded), s}} {
			r, _, _ := foldCooc(row)
			r.top(5)
			rowTop(row, 5)
		}
	})
}
