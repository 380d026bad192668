package store

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
)

// shownArg is the reference script's item argument of an impression: its
// variant, then source and item per item shown, '\n'-joined.
func shownArg(s *event.Shown) string {
	var b strings.Builder
	b.WriteString(s.Variant)
	for i, it := range s.Items {
		b.WriteByte('\n')
		if i < len(s.Sources) {
			b.WriteString(s.Sources[i])
		}
		b.WriteByte('\n')
		b.WriteString(it)
	}
	return b.String()
}

// refUserScript is the user script that applied the user half in Redis
// before it moved into the process (testdata/user.lua): the reference
// the Go port is compared with.
func refUserScript(t *testing.T) *redis.Script {
	t.Helper()
	b, err := os.ReadFile("testdata/user.lua")
	if err != nil {
		t.Fatal(err)
	}
	return redis.NewScript(commonLua + string(b))
}

// refApply runs the reference script for each user of one partition's
// batch, as the store ran it, and returns its answers in the order of
// users.
func refApply(t *testing.T, ctx context.Context, s *Store, sc *redis.Script, p int32, ops []Op, users []string, byUser map[string][]int) []userReply {
	t.Helper()
	purchase := event.Purchase.String()
	ttl := strconv.FormatInt(int64(s.opt.UserTTL/time.Second), 10)
	now := strconv.FormatInt(s.opt.Now().Unix(), 10)
	att := s.opt.Attribution
	window, fallback := strconv.FormatInt(att.Window.Milliseconds(), 10), "1"
	if att.NoListFallback {
		fallback = "0"
	}
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.Cmd, len(users))
	for k, u := range users {
		idx := byUser[u]
		args := []any{strconv.Itoa(int(p)), s.opt.UserItemsCap, s.opt.UserLogCap, ttl, purchase, now, len(idx), window, fallback, att.ShownCap}
		for _, i := range idx {
			op := ops[i]
			if op.Type == event.Impression {
				args = append(args, op.Offset, shownArg(op.Shown), op.Type.String(), op.TS, "0")
				continue
			}
			args = append(args, op.Offset, op.Item, op.Type.String(), op.TS, fmtFloat(s.opt.Weights[op.Type]*s.Decay(op.TS)))
		}
		if s.opt.NextWindow > 0 {
			args = append(args, "1")
		}
		cmds[k] = sc.Eval(ctx, pipe, []string{s.keys.UserWeights(u), s.keys.UserLog(u), s.keys.UserMeta(u), s.keys.UserPurchased(u),
			s.keys.UserShownAt(u), s.keys.UserShown(u), s.keys.UserAttribution(u), s.keys.UserList(u)}, args...)
	}
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatalf("reference script: %v", err)
	}
	out := make([]userReply, len(users))
	for k, c := range cmds {
		reply, err := c.Slice()
		if err != nil || len(reply) != 4 {
			t.Fatalf("reference answer %v, %v", reply, err)
		}
		codes, _ := reply[0].([]any)
		for _, x := range codes {
			out[k].codes = append(out[k].codes, x.(int64))
		}
		out[k].log, out[k].recs, out[k].attlog = toStrings(reply[1]), toStrings(reply[2]), toStrings(reply[3])
	}
	return out
}

// userKeyContents returns the contents of every key of u's group (the
// list key aside) as text: type, elements (zsets with their scores, in
// order; hashes sorted by field, the meta hash without k and c, which only
// the script keeps) and whether it has a TTL. With blob, the weights, log
// and purchases are read from the state blob and shown as the keys the
// script keeps them in (with the blob's TTL; a key without elements is
// absent).
func userKeyContents(t *testing.T, ctx context.Context, rdb redis.UniversalClient, k Keys, u string, blob bool) (map[string]string, map[string]time.Duration) {
	t.Helper()
	out := make(map[string]string)
	ttls := make(map[string]time.Duration)
	for name, key := range map[string]string{"w": k.UserWeights(u), "log": k.UserLog(u), "m": k.UserMeta(u), "buy": k.UserPurchased(u),
		"imp": k.UserShownAt(u), "imd": k.UserShown(u), "att": k.UserAttribution(u)} {
		typ := rdb.Type(ctx, key).Val()
		var body string
		switch typ {
		case "zset":
			for _, z := range rdb.ZRangeWithScores(ctx, key, 0, -1).Val() {
				body += fmt.Sprintf("%s=%s ", z.Member, fmtFloat(z.Score))
			}
		case "list":
			body = fmt.Sprintf("%q", rdb.LRange(ctx, key, 0, -1).Val())
		case "hash":
			h := rdb.HGetAll(ctx, key).Val()
			fs := make([]string, 0, len(h))
			for f := range h {
				if name == "m" && (f == "k" || f == "c") {
					continue
				}
				fs = append(fs, f)
			}
			slices.Sort(fs)
			for _, f := range fs {
				body += fmt.Sprintf("%q=%q ", f, h[f])
			}
		}
		out[name] = typ + " " + body
		ttls[name] = rdb.PTTL(ctx, key).Val()
	}
	if !blob {
		return out, ttls
	}
	for _, name := range []string{"w", "log", "buy"} {
		if out[name] != "none " {
			t.Fatalf("user %s: key %s beside the state blob: %s", u, name, out[name])
		}
	}
	b, err := rdb.Get(ctx, k.UserState(u)).Bytes()
	if errors.Is(err, redis.Nil) {
		return out, ttls
	}
	if err != nil {
		t.Fatal(err)
	}
	v, err := decodeUserBlob(b, wantAll)
	if err != nil {
		t.Fatal(err)
	}
	ttl := rdb.PTTL(ctx, k.UserState(u)).Val()
	if len(v.weights) > 0 {
		body := ""
		for i := len(v.weights) - 1; i >= 0; i-- { // ZRANGE's order
			body += fmt.Sprintf("%s=%s ", v.weights[i].ID, fmtFloat(v.weights[i].Score))
		}
		out["w"], ttls["w"] = "zset "+body, ttl
	}
	if len(v.log) > 0 {
		out["log"], ttls["log"] = "list "+fmt.Sprintf("%q", v.log), ttl
	}
	if len(v.bought) > 0 {
		body := ""
		for _, z := range v.bought {
			body += fmt.Sprintf("%s=%s ", z.ID, fmtFloat(z.Score))
		}
		out["buy"], ttls["buy"] = "zset "+body, ttl
	}
	return out, ttls
}

// userDiffConfig is one configuration of the differential test.
type userDiffConfig struct {
	name       string
	window     time.Duration
	fallback   bool
	ttl        time.Duration
	nextWindow int
	cache      int
	idle       time.Duration // Options.CopyIdle
	trim       bool          // copies also dropped at random: revoked partitions, memory
}

// The Go port of the user script (userstate.go, applied by applyUserHalf
// with copies kept between batches) answers every event as the script
// did and leaves every key of the user's group as the script left it:
// random events of every type (impressions with repeated items,
// purchases, repeated items) of a few users on two partitions, batches
// of random boundaries, replays of applied offsets with other
// boundaries, offsets delivered again within a batch, erasures, lists
// for attribution's fallback, attribution on and off, TTLs renewed on a
// moving clock, caps that trim every key, and copies dropped between
// batches (idle, memory, revoked partitions).
func TestUserPortMatchesScript(t *testing.T) {
	srv := redistest.Start(t)
	rdb := srv.Client(t)
	ctx := context.Background()
	ref := refUserScript(t)
	for _, dc := range []userDiffConfig{
		{name: "attribution", window: 10 * time.Second, fallback: true, ttl: time.Hour, nextWindow: 3, cache: 2},
		{name: "no_fallback", window: 10 * time.Second, ttl: time.Hour, nextWindow: 0, cache: 5},
		{name: "no_attribution", ttl: 0, nextWindow: 3, cache: 1},
		{name: "no_cache", window: 10 * time.Second, fallback: true, ttl: 10 * time.Minute, nextWindow: 3, cache: 0},
		{name: "copies_dropped", window: 10 * time.Second, fallback: true, ttl: time.Hour, nextWindow: 3, cache: 3, idle: 90 * time.Second, trim: true},
	} {
		t.Run(dc.name, func(t *testing.T) {
			seen := make(map[string]int)
			for seed := uint64(1); seed <= 6; seed++ {
				srv.FlushAll(t)
				runUserDiff(t, ctx, rdb, ref, dc, seed, seen)
			}
			// The cases the comparison is about all happened.
			want := []string{"code-2", "code0", "code1", "code2"}
			if dc.window > 0 {
				want = append(want, "i", "via i")
			}
			if dc.window > 0 && dc.fallback {
				want = append(want, "via l")
			}
			if dc.cache > 0 {
				want = append(want, "refused")
			}
			if dc.trim {
				want = append(want, "evicted count", "evicted idle", "evicted memory", "evicted revoked")
			}
			for _, w := range want {
				if seen[w] == 0 {
					t.Errorf("no %q in any run (seen %v)", w, seen)
				}
			}
		})
	}
}

// runUserDiff runs one random sequence, counting in seen the codes,
// the kinds of attribution records and the refused writes met.
func runUserDiff(t *testing.T, ctx context.Context, rdb redis.UniversalClient, ref *redis.Script, dc userDiffConfig, seed uint64, seen map[string]int) {
	rng := rand.New(rand.NewPCG(seed, 7))
	clock := time.Unix(1_700_000_000, 0)
	opts := func(prefix string) Options {
		o := OptionsFromConfig(config.Default())
		o.Prefix, o.UserTTL = prefix, dc.ttl
		o.UserItemsCap, o.UserLogCap, o.NextWindow = 5, 4, dc.nextWindow
		o.Attribution = AttributionOptions{Window: dc.window, NoListFallback: !dc.fallback, ShownCap: 4}
		o.UserCache, o.CopyIdle = dc.cache, dc.idle
		o.Now = func() time.Time { return clock }
		return o
	}
	lua, port := New(rdb, opts("l:")), New(rdb, opts("g:"))
	// A memory limit always exceeded: each trim drops the least recently
	// used quarter.
	var cycles uint64
	port.heap = func() heapReading { cycles++; return heapReading{live: 1 << 30, limit: 1 << 30, cycles: cycles} }

	users := []string{"u1", "u2", "u3", "u4"} // u4 only sees lists
	items := []string{"i0", "i1", "i2", "i3", "i4", "i5", "i6", "x|y", "i8"}
	types := []event.Type{event.Browse, event.Click, event.AddToCart, event.Purchase, event.Impression, event.Click}
	if seed%2 == 0 {
		types = types[:4] // no impressions: attribution to lists only
	}
	// Each partition's log of events.
	type part struct {
		ops  []Op
		next int // first offset not delivered yet
	}
	parts := []*part{{}, {}}
	ts := clock.UnixMilli()
	for _, pt := range parts {
		for off := 0; off < 120; off++ {
			ts += 500 * rng.Int64N(6)
			if rng.IntN(30) == 0 {
				ts += 60000 // out of every window
			}
			op := Op{Offset: int64(off), User: users[rng.IntN(len(users))], Type: types[rng.IntN(len(types))], TS: ts, Value: float64(rng.IntN(50))}
			if op.User == "u4" {
				op.Type = event.Impression
			}
			if op.Type == event.Impression {
				sh := &event.Shown{Variant: []string{"A", "B"}[rng.IntN(2)]}
				for n := 1 + rng.IntN(4); n > 0; n-- {
					sh.Items = append(sh.Items, items[rng.IntN(len(items))])
					sh.Sources = append(sh.Sources, []string{"item_knn", "trending"}[rng.IntN(2)])
				}
				op.Shown = sh
			} else {
				op.Item = items[rng.IntN(len(items))]
			}
			pt.ops = append(pt.ops, op)
		}
	}
	batches := 0
	for parts[0].next < len(parts[0].ops) || parts[1].next < len(parts[1].ops) {
		p := int32(rng.IntN(2))
		pt := parts[p]
		if pt.next >= len(pt.ops) {
			p = 1 - p
			pt = parts[p]
		}
		clock = clock.Add(time.Duration(rng.IntN(60)) * time.Second)
		from := pt.next
		if rng.IntN(5) == 0 {
			from = max(0, from-1-rng.IntN(15)) // a replay of applied offsets
		}
		to := min(len(pt.ops), from+1+rng.IntN(12))
		batch := slices.Clone(pt.ops[from:to])
		if rng.IntN(8) == 0 {
			batch = append(batch, pt.ops[from+rng.IntN(to-from):to]...) // delivered again within the batch
		}
		pt.next = max(pt.next, to)

		switch rng.IntN(20) {
		case 0: // an erasure, at the time of the batch's first event
			u := users[rng.IntN(len(users))]
			for _, s := range []*Store{lua, port} {
				if _, err := s.eraseUser(ctx, u, batch[0].TS-1, time.Hour, &ForgetResult{}); err != nil {
					t.Fatal(err)
				}
			}
		case 1, 2, 3, 4, 5, 6: // a list, written by the scorer
			u := users[rng.IntN(len(users))]
			l := List{Version: ListFormatVersion, User: u, Variant: "C", EventTS: batch[0].TS - 500*rng.Int64N(13)}
			for n := rng.IntN(8); n > 0; n-- {
				l.Items = append(l.Items, ListItem{Item: items[rng.IntN(len(items))], Source: "user_knn"})
			}
			b, _ := json.Marshal(l)
			for _, s := range []*Store{lua, port} {
				rdb.Set(ctx, s.keys.UserList(u), b, 0)
			}
		case 7, 8: // the other partition revoked
			if dc.trim {
				port.AssignedPartitions([]int{int(p)})
			}
		case 9, 10, 11: // idle copies and, over the memory limit, the oldest quarter
			if dc.trim {
				port.trimUserCopies()
			}
		}

		res := ApplyResult{Users: make(map[string]int64)}
		bu, byUser := groupByUser(batch, &res, false)
		want := refApply(t, ctx, lua, ref, p, batch, bu, byUser)
		got, err := port.applyUserHalf(ctx, port.userCacheOf(p), p, batch, bu, byUser)
		if err != nil {
			t.Fatal(err)
		}
		batches++
		where := fmt.Sprintf("seed %d, batch %d (partition %d, offsets %d..%d of %d ops)", seed, batches, p, batch[0].Offset, batch[len(batch)-1].Offset, len(batch))
		for k, u := range bu {
			w, g := want[k], got[k]
			for j, c := range w.codes {
				seen[fmt.Sprint("code", c)]++
				if r := w.recs[j]; strings.HasPrefix(r, "i|") {
					seen["i"]++
				} else if f := strings.Split(r, "|"); f[0] == "a" {
					seen["via "+f[3]]++
				}
			}
			if !slices.Equal(w.codes, g.codes) || !slices.Equal(w.log, g.log) || !slices.Equal(w.recs, g.recs) || !slices.Equal(w.attlog, g.attlog) {
				t.Fatalf("%s, user %s: answers differ\nscript: %+v\nport:   %+v", where, u, w, g)
			}
		}
		for _, u := range users {
			wk, wt := userKeyContents(t, ctx, rdb, lua.keys, u, false)
			gk, gt := userKeyContents(t, ctx, rdb, port.keys, u, true)
			for name := range wk {
				if wk[name] != gk[name] {
					t.Fatalf("%s, user %s, key %s differs\nscript: %s\nport:   %s", where, u, name, wk[name], gk[name])
				}
				if d := wt[name] - gt[name]; (wt[name] < 0) != (gt[name] < 0) || d > 3*time.Second || d < -3*time.Second {
					t.Fatalf("%s, user %s, key %s: TTL %v, script's %v", where, u, name, gt[name], wt[name])
				}
			}
		}
	}
	if dc.cache > 0 && testutil.ToFloat64(port.opt.UserMetrics.Users.WithLabelValues("memory")) == 0 {
		t.Fatalf("seed %d: no batch used a copy kept", seed)
	}
	seen["refused"] += int(testutil.ToFloat64(port.opt.UserMetrics.Refused))
	for _, r := range []string{"count", "idle", "memory", "revoked"} {
		seen["evicted "+r] += int(testutil.ToFloat64(port.opt.UserMetrics.Evicted.WithLabelValues(r)))
	}
	kept := 0
	for _, c := range port.userCaches() {
		kept += c.len()
	}
	if g := int(testutil.ToFloat64(port.opt.UserMetrics.Copies)); g != kept {
		t.Fatalf("seed %d: copies gauge %d, %d copies kept", seed, g, kept)
	}
}
