package store

import (
	"cmp"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"maps"
	"math"
	"slices"
	"strconv"
	"strings"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
)

// The user half of ingest, applied in the process.
//
// A userState is the image of one user's key group as Redis holds it:
// the weights, log and purchases (one blob, userblob.go), the meta hash
// (f:<partition> fences, n, ts, x, gone), the shown zset and hash, and
// the attribution log. applyUser applies one partition's events for the
// user to it and returns the answer readUserAnswer reads, and a guarded
// write (guarded.go) whose commands change the keys as the events did:
// the blob written whole, and the same entries, scores, caps, trims and
// TTL renewals in the other keys, so that what Redis holds after the
// write is what the copy holds after commit.
//
// Fences: an event is applied when its offset is above the meta hash's
// f:<partition>, and dropped when its time is at or before gone (the
// user's erasure time, forget.go). Weights: item -> the sum of the
// event weights scaled to the epoch (Store.Decay). Log: newest first,
// entries offset|partition|type|ts|new|item (entry.go), 2·user_log_cap
// kept (readers use the first user_log_cap); impressions are not logged.
// Purchases: item -> time of its latest purchase, user_items_cap kept
// (the oldest go). The meta hash's n counts the applied events, ts is the
// newest event time.
//
// Attribution: impressions are applied under the same fence but carry no
// weight. The shown hash holds, per item shown, ts|n|done|pos|via|
// variant|source (entry.go, ShownItem): when it was shown (or the list
// time, via l), the times shown since its last click, the attributed
// kinds (bits 1 click, 2 add_to_cart, 4 purchase), its 1-based position;
// ' t' the newest impression time and ' v:<variant>' the user's counters
// in that variant, flags|n|x (flags 1 exposed, 2 clicked, 4 carted,
// 8 bought; n items shown; x attributed clicks). The shown zset bounds
// the hash to attribution.shown_cap items (the least recently shown go).
// A click, cart or purchase of an item shown at most window ms before it
// is attributed to that showing, once per kind; without an impression in
// the window, to the user's current list when it holds the item and its
// event_ts lies within the window before the event (via l). What an
// event adds to the experiment counters is decided here (its attribution
// record, entry.go) and kept in the attribution log, so that a replay
// answers a fenced event with the decision its first application stored.
//
// Expiry: the blob is written with its TTL (SET ... EX) by every write
// that changes it, and by every write that applies an event while it is
// absent or when the meta hash's TTL is renewed, so a user with events
// has a blob. The meta hash keeps x, when its TTL was last renewed: on a
// write when x is older than ttl/64 (or missing). So each key expires
// between 63/64·ttl and ttl after the user's last write, and the meta hash
// no later than the blob: a copy whose keys expired fails its guard (n is
// gone) and is read again.
type userState struct {
	weights map[string]float64 // {u}:s
	log     []string           // {u}:s, newest first
	bought  map[string]float64 // {u}:s, item -> purchase time
	meta    map[string]string  // {u}:m
	shownAt map[string]float64 // {u}:imp, item -> time last shown
	shown   map[string]string  // {u}:imd
	att     []string           // {u}:att, newest first
	blob    bool               // {u}:s exists
	old     bool               // read from {u}:w, :log and :buy, which the next write deletes
}

// userLoad is one user's keys read in a pipeline, the meta hash's n and
// gone read again after them: every writer of the group changes one of
// them (a guarded write n, an erasure gone, an expiry both), so when they
// are unchanged no write fell between the reads and the copy is one
// instant's state. (A transaction would say the same, but go-redis runs
// none across Cluster slots.)
type userLoad struct {
	blob        *redis.StringCmd
	imp         *redis.ZSliceCmd
	att         *redis.StringSliceCmd
	meta, shown *redis.MapStringStringCmd
	check       *redis.SliceCmd
}

func (s *Store) queueUserLoad(ctx context.Context, pipe redis.Pipeliner, u string) userLoad {
	k := s.keys
	return userLoad{
		blob:  pipe.Get(ctx, k.UserState(u)),
		meta:  pipe.HGetAll(ctx, k.UserMeta(u)),
		imp:   pipe.ZRangeWithScores(ctx, k.UserShownAt(u), 0, -1),
		shown: pipe.HGetAll(ctx, k.UserShown(u)),
		att:   pipe.LRange(ctx, k.UserAttribution(u), 0, -1),
		check: pipe.HMGet(ctx, k.UserMeta(u), "n", "gone"),
	}
}

// oldLoad is the weights, log and purchases of a user written before the
// blob, and the meta hash's n and gone read again after them, which must
// be what its userLoad read.
type oldLoad struct {
	w, buy *redis.ZSliceCmd
	log    *redis.StringSliceCmd
	check  *redis.SliceCmd
}

func (s *Store) queueOldLoad(ctx context.Context, pipe redis.Pipeliner, u string) oldLoad {
	k := s.keys
	return oldLoad{
		w:     pipe.ZRangeWithScores(ctx, k.UserWeights(u), 0, -1),
		log:   pipe.LRange(ctx, k.UserLog(u), 0, -1),
		buy:   pipe.ZRangeWithScores(ctx, k.UserPurchased(u), 0, -1),
		check: pipe.HMGet(ctx, k.UserMeta(u), "n", "gone"),
	}
}

// fill sets st's weights, log and purchases from the keys read; false when
// a write fell between st's reads and these.
func (l oldLoad) fill(st *userState) (bool, error) {
	var err error
	if st.weights, err = zsetMap(l.w); err != nil {
		return false, err
	}
	if st.bought, err = zsetMap(l.buy); err != nil {
		return false, err
	}
	if st.log, err = l.log.Result(); err != nil {
		return false, err
	}
	st.old = true
	return sameNGone(st.meta, l.check)
}

// sameNGone reports whether check, an HMGET of n and gone, read what meta
// holds.
func sameNGone(meta map[string]string, check *redis.SliceCmd) (bool, error) {
	got, err := check.Result()
	if err != nil {
		return false, err
	}
	for k, f := range []string{"n", "gone"} {
		v, ok := meta[f]
		if s, isStr := got[k].(string); isStr != ok || s != v {
			return false, nil
		}
	}
	return true, nil
}

func zsetMap(c *redis.ZSliceCmd) (map[string]float64, error) {
	zs, err := c.Result()
	if err != nil {
		return nil, err
	}
	m := make(map[string]float64, len(zs))
	for _, z := range zs {
		m[z.Member.(string)] = z.Score
	}
	return m, nil
}

// state returns the copy read, nil when a write fell between the reads.
// A user with events and no blob was written before the blob: its copy
// lacks the weights, log and purchases (nil), which oldLoad reads.
func (l userLoad) state() (*userState, error) {
	st := &userState{}
	var err error
	if st.shownAt, err = zsetMap(l.imp); err != nil {
		return nil, err
	}
	if st.att, err = l.att.Result(); err != nil {
		return nil, err
	}
	if st.meta, err = l.meta.Result(); err != nil {
		return nil, err
	}
	if st.shown, err = l.shown.Result(); err != nil {
		return nil, err
	}
	b, err := l.blob.Bytes()
	switch {
	case errors.Is(err, redis.Nil):
		if _, ok := st.meta["n"]; !ok {
			st.weights, st.bought, st.log = map[string]float64{}, map[string]float64{}, []string{}
		}
	case err != nil:
		return nil, err
	default:
		v, err := decodeUserBlob(b, wantAll)
		if err != nil {
			return nil, err
		}
		st.blob = true
		st.weights = make(map[string]float64, len(v.weights))
		for _, w := range v.weights {
			st.weights[w.ID] = w.Score
		}
		st.bought = make(map[string]float64, len(v.bought))
		for _, b := range v.bought {
			st.bought[b.ID] = b.Score
		}
		st.log = v.log
	}
	if ok, err := sameNGone(st.meta, l.check); !ok || err != nil {
		return nil, err
	}
	return st, nil
}

// maxLoadAttempts bounds how often one user is read again because a
// write fell between its reads.
const maxLoadAttempts = 8

// newUserState is the copy of a user none of whose keys exist: what
// userLoad.state reads for one.
func newUserState() *userState {
	return &userState{
		weights: map[string]float64{}, bought: map[string]float64{}, log: []string{},
		meta: map[string]string{}, shownAt: map[string]float64{}, shown: map[string]string{}, att: []string{},
	}
}

// probeUsers asks, with one EXISTS per user, which users have none of
// their keys, and sets their copies (newUserState); it returns the
// others. A write that creates one of a user's keys sets the meta hash's
// n (an erasure sets gone), which the user's guarded write then finds
// changed: a copy from a probe is as consistent as one read whole.
func (s *Store) probeUsers(ctx context.Context, users []string, out []*userState) ([]int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.IntCmd, len(users))
	ks := s.keys
	for k, u := range users {
		// The keys of users written before the blob are read only when
		// the meta hash holds n.
		cmds[k] = pipe.Exists(ctx, ks.UserState(u), ks.UserMeta(u), ks.UserShownAt(u), ks.UserShown(u), ks.UserAttribution(u))
	}
	if _, err := pipe.Exec(ctx); err != nil {
		return nil, err
	}
	var rest []int
	for k, c := range cmds {
		if c.Val() == 0 {
			out[k] = newUserState()
			continue
		}
		rest = append(rest, k)
	}
	return rest, nil
}

// loadUsers reads the key groups of users: first whether any of a user's
// keys exists (probeUsers; most users read are new ones), then the keys of
// the others in one pipeline, and one more for the users written before
// the blob (and again for each user a write changed while it was read).
func (s *Store) loadUsers(ctx context.Context, users []string) ([]*userState, error) {
	out := make([]*userState, len(users))
	todo, err := s.probeUsers(ctx, users, out)
	if err != nil {
		return nil, err
	}
	for attempt := 0; len(todo) > 0; attempt++ {
		if attempt == maxLoadAttempts {
			return nil, fmt.Errorf("user %q changed while read, %d times", users[todo[0]], attempt)
		}
		pipe := s.rdb.Pipeline()
		loads := make([]userLoad, len(todo))
		for j, k := range todo {
			loads[j] = s.queueUserLoad(ctx, pipe, users[k])
		}
		if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
			return nil, err
		}
		again := todo[:0]
		var old []int
		for j, k := range todo {
			st, err := loads[j].state()
			if err != nil {
				return nil, fmt.Errorf("user %q: %w", users[k], err)
			}
			if st == nil {
				again = append(again, k)
				continue
			}
			out[k] = st
			if st.weights == nil {
				old = append(old, k)
			}
		}
		if len(old) > 0 {
			pipe := s.rdb.Pipeline()
			olds := make([]oldLoad, len(old))
			for j, k := range old {
				olds[j] = s.queueOldLoad(ctx, pipe, users[k])
			}
			if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			for j, k := range old {
				ok, err := olds[j].fill(out[k])
				if err != nil {
					return nil, err
				}
				if !ok {
					out[k] = nil
					again = append(again, k)
				}
			}
		}
		todo = again
	}
	return out, nil
}

// userReply is what applying one user's events answers: a code per event
// (history.go), the stored log as it was before (newest first: all of it
// when an event was fenced, else its newest user_log_cap entries when an
// event made an item new or, with every history asked, was applied, else
// none), the attribution record per event ("" for none; applied events
// only), and the attribution log when an event was fenced.
type userReply struct {
	codes  []int64
	log    []string
	recs   []string
	attlog []string
}

// userList is the user's current list as attribution's fallback reads it:
// unknown until read (applyUser then asks for it), or its payload
// (absent: no list).
type userList struct {
	known, present bool
	raw            string
}

// userApplyConfig is what applying a user's events needs of the options.
type userApplyConfig struct {
	p        int32
	ps       string // p in decimal
	cap      int
	logCap   int
	ttl      int64 // seconds; 0 = no expiry
	now      int64 // unix seconds, for TTL renewal
	window   float64
	fallback bool
	shownCap int
	nextAll  bool // every applied event needs its history (next.go)
	purchase event.Type
	weightOf func(Op) float64
}

// userKeys are the keys of one user's group, and those a user written
// before the blob kept its weights, log and purchases in (w, log, buy).
type userKeys struct {
	state, meta, imp, shown, att string
	w, log, buy                  string
}

func (s *Store) userKeys(u string) userKeys {
	k := s.keys
	return userKeys{state: k.UserState(u), meta: k.UserMeta(u), imp: k.UserShownAt(u), shown: k.UserShown(u),
		att: k.UserAttribution(u), w: k.UserWeights(u), log: k.UserLog(u), buy: k.UserPurchased(u)}
}

// userApplyConfig returns the configuration of applying partition p's
// events now.
func (s *Store) userApplyConfig(p int32) *userApplyConfig {
	att := s.opt.Attribution
	return &userApplyConfig{
		p: p, ps: strconv.Itoa(int(p)),
		cap: s.opt.UserItemsCap, logCap: s.opt.UserLogCap,
		ttl: int64(s.opt.UserTTL.Seconds()), now: s.opt.Now().Unix(),
		window: float64(att.Window.Milliseconds()), fallback: !att.NoListFallback, shownCap: att.ShownCap,
		nextAll: s.opt.NextWindow > 0, purchase: event.Purchase,
		weightOf: func(op Op) float64 { return s.opt.Weights[op.Type] * s.Decay(op.TS) },
	}
}

// shownRec is a shown item's record while events are applied (ts as a
// number: a list's event time need not be whole).
type shownRec struct {
	ts      float64
	n, done int64
	pos     int64
	via, v  string
	src     string
	w       bool // written by this application
}

type userStat struct{ f, n, x int64 }

// userChange is one application's effect: the guarded write that makes
// Redis hold it and the copy's changes, made by commit once it is
// written.
type userChange struct {
	write   *guardedWrite
	blob    bool               // the blob is written: weights, log and bought are the copy's now
	weights map[string]float64 // all of them
	log     []string
	bought  map[string]float64
	meta    [][2]string
	shown   [][2]string // hash fields set
	shownZ  []Scored    // ZADDs in order
	sTrim   []string
	attPush []string // oldest first
	logCap  int
}

// commit applies c to st: st then holds what c's write left in Redis.
func (c *userChange) commit(st *userState) {
	if c.blob {
		st.weights, st.log, st.bought = c.weights, c.log, c.bought
		st.blob, st.old = true, false
	}
	for _, f := range c.meta {
		st.meta[f[0]] = f[1]
	}
	for _, f := range c.shown {
		st.shown[f[0]] = f[1]
	}
	for _, z := range c.shownZ {
		st.shownAt[z.ID] = z.Score
	}
	for _, it := range c.sTrim {
		delete(st.shownAt, it)
		delete(st.shown, it)
	}
	st.att = pushFront(st.att, c.attPush, 2*c.logCap, len(c.attPush) > 0)
}

// pushFront returns list with entries (oldest first) pushed on its head,
// as LPUSH does, trimmed to max entries when trim.
func pushFront(list, entries []string, max int, trim bool) []string {
	if len(entries) == 0 && !trim {
		return list
	}
	out := make([]string, 0, min(len(list)+len(entries), max))
	for i := len(entries) - 1; i >= 0 && len(out) < max; i-- {
		out = append(out, entries[i])
	}
	for _, e := range list {
		if len(out) >= max {
			break
		}
		out = append(out, e)
	}
	return out
}

// lowest returns the names of the k lowest-ranked members of a zset
// (score ascending, then name), as ZRANGE 0 k-1 does.
func lowest(z map[string]float64, k int) []string {
	all := make([]Scored, 0, len(z))
	for m, v := range z {
		all = append(all, Scored{ID: m, Score: v})
	}
	slices.SortFunc(all, func(a, b Scored) int {
		if c := cmp.Compare(a.Score, b.Score); c != 0 {
			return c
		}
		return strings.Compare(a.ID, b.ID)
	})
	out := make([]string, 0, k)
	for _, x := range all[:k] {
		out = append(out, x.ID)
	}
	return out
}

// merged returns base with over's members set, without changing base
// (base itself when over is empty).
func merged(base map[string]float64, over []Scored) map[string]float64 {
	if len(over) == 0 {
		return base
	}
	m := make(map[string]float64, len(base)+len(over))
	for k, v := range base {
		m[k] = v
	}
	for _, z := range over {
		m[z.ID] = z.Score
	}
	return m
}

func fmtInt(v int64) string { return strconv.FormatInt(v, 10) }

// metaInt reads a number of the meta hash, def when it is absent or
// malformed.
func metaInt(m map[string]string, f string, def int64) int64 {
	v, ok := m[f]
	if !ok {
		return def
	}
	n, err := strconv.ParseInt(v, 10, 64)
	if err != nil {
		if x, ferr := strconv.ParseFloat(strings.TrimSpace(v), 64); ferr == nil {
			return int64(x)
		}
		return def
	}
	return n
}

// errNeedList is answered by applyUser when attribution's list fallback
// needs the user's list and it is not known yet.
var errNeedList = errors.New("the user's list is needed")

// userApply holds one application's working state.
type userApply struct {
	cfg  *userApplyConfig
	st   *userState
	list *userList

	shown    map[string]*shownRec
	shownW   []string
	shownZ   []Scored
	ustats   map[string]*userStat
	ustatsW  []string
	newest   float64
	newestOK bool // newest read
	listIdx  *listIndex
	listRead bool
}

// applyUser applies the events ops[idx] of one user (in that order) to
// st, which it does not change: the change is written by c.write and
// made to st by c.commit. It returns errNeedList when the user's list is
// needed and list is not known.
func applyUser(cfg *userApplyConfig, st *userState, keys userKeys, ops []Op, idx []int, list *userList) (userReply, *userChange, error) {
	a := &userApply{cfg: cfg, st: st, list: list}
	fkey := "f:" + cfg.ps
	fenceStr, hasFence := st.meta[fkey]
	fence := int64(-1)
	if hasFence {
		fence = metaInt(st.meta, fkey, -1)
	}
	gone := metaInt(st.meta, "gone", -1)

	// The items of the events that may apply, with their weights.
	wcur := make(map[string]float64)
	for _, i := range idx {
		op := ops[i]
		if op.Offset > fence && op.TS > gone && op.Type != event.Impression {
			if _, ok := wcur[op.Item]; !ok {
				if v, ok := st.weights[op.Item]; ok {
					wcur[op.Item] = v
				}
			}
		}
	}
	changed := make(map[string]bool)

	var reply userReply
	reply.codes = make([]int64, 0, len(idx))
	reply.recs = make([]string, 0, len(idx))
	var (
		applied, newItems int
		lastts            int64
		fenced, bought    bool
		pending           []string
		boughtZ           []Scored
		attPush           []string
	)
	for _, i := range idx {
		op := ops[i]
		rec := ""
		switch {
		case op.TS <= gone:
			reply.codes = append(reply.codes, codeErased)
		case op.Offset <= fence:
			reply.codes = append(reply.codes, codeFenced)
			fenced = true
		case op.Type == event.Impression:
			if cfg.window > 0 {
				rec = a.impression(op)
			}
			fence, fenceStr = op.Offset, fmtInt(op.Offset)
			applied++
			reply.codes = append(reply.codes, codeApplied)
		default:
			if bit := attributionBit(op.Type); cfg.window > 0 && bit > 0 {
				var err error
				if rec, err = a.attribute(op, bit); err != nil {
					return userReply{}, nil, err
				}
			}
			v, ok := wcur[op.Item]
			code := int64(codeApplied)
			if !ok {
				code = codeAppliedNew
				newItems++
			}
			wcur[op.Item] = v + cfg.weightOf(op)
			changed[op.Item] = true
			if op.Type == cfg.purchase {
				boughtZ = append(boughtZ, Scored{ID: op.Item, Score: float64(op.TS)})
				bought = true
			}
			pending = append(pending, string(appendLogEntry(nil, LoggedEvent{Offset: op.Offset, Partition: cfg.p,
				Type: op.Type.String(), TS: op.TS, New: !ok, Item: op.Item})))
			fence, fenceStr = op.Offset, fmtInt(op.Offset)
			applied++
			lastts = max(lastts, op.TS)
			reply.codes = append(reply.codes, code)
		}
		reply.recs = append(reply.recs, rec)
		if rec != "" {
			attPush = append(attPush, string(appendAttEntry(nil, attEntry{Offset: op.Offset, Partition: cfg.p, Record: rec})))
		}
	}
	// The log before these events: an applied event's history scans at
	// most log_cap entries, these events' included, so the newest log_cap
	// do.
	if fenced {
		reply.log = st.log
	} else if newItems > 0 || (applied > 0 && cfg.nextAll) {
		reply.log = st.log[:min(len(st.log), cfg.logCap)]
	}
	if fenced {
		reply.attlog = st.att
	}

	c := &userChange{write: newGuardedWrite(keys.meta), logCap: cfg.logCap}
	g := c.write
	g.guard("n", st.meta["n"])
	g.guard("gone", st.meta["gone"])
	g.guard(fkey, st.meta[fkey])
	if applied > 0 {
		prevts := metaInt(st.meta, "ts", 0)
		lastts = max(lastts, prevts)
		c.meta = append(c.meta, [2]string{fkey, fenceStr}, [2]string{"ts", fmtInt(lastts)},
			[2]string{"n", fmtInt(metaInt(st.meta, "n", 0) + int64(applied))})
		renew := false
		if cfg.ttl > 0 {
			if x := metaInt(st.meta, "x", -1); x < 0 || cfg.now-x >= cfg.ttl/64 {
				renew = true
				c.meta = append(c.meta, [2]string{"x", fmtInt(cfg.now)})
			}
		}
		// The blob: written when the events changed it, and whenever it
		// is absent (a user with events has one) or the meta hash's TTL is
		// renewed (the blob expires no earlier).
		if len(pending) > 0 || !st.blob || renew {
			c.blob = true
			c.weights, c.log, c.bought = st.weights, st.log, st.bought
		}
		if len(pending) > 0 {
			// Weights.
			w := make(map[string]float64, len(st.weights)+newItems)
			maps.Copy(w, st.weights)
			for it := range changed {
				w[it] = wcur[it]
			}
			if newItems > 0 && len(w) > cfg.cap {
				for _, it := range lowest(w, len(w)-cfg.cap) {
					delete(w, it)
				}
			}
			c.weights = w
			// The log.
			c.log = pushFront(st.log, pending, 2*cfg.logCap, true)
		}
		if bought {
			b := merged(st.bought, boughtZ) // a new map: boughtZ is not empty
			if len(b) > cfg.cap {
				for _, it := range lowest(b, len(b)-cfg.cap) {
					delete(b, it)
				}
			}
			c.bought = b
		}
		if c.blob {
			blob := encodeUserBlob(c.weights, c.bought, c.log)
			if cfg.ttl > 0 {
				g.cmd("SET", keys.state, blob, "EX", cfg.ttl)
			} else {
				g.cmd("SET", keys.state, blob)
			}
			if st.old {
				// Written before the blob: the keys it replaces go, and the
				// meta fields only they needed.
				g.cmd("UNLINK", keys.w, keys.log, keys.buy)
				g.cmd("HDEL", keys.meta, "k", "c")
			}
		}
		hs := make([]any, 0, 2*len(c.meta))
		for _, f := range c.meta {
			hs = append(hs, f[0], f[1])
		}
		g.cmd("HSET", keys.meta, hs...)
		if renew {
			g.cmd("EXPIRE", keys.meta, cfg.ttl)
		}
	}
	// The attribution state these events changed.
	if len(a.shownW) > 0 || len(a.ustatsW) > 0 {
		for _, it := range a.shownW {
			r := a.shown[it]
			c.shown = append(c.shown, [2]string{it, r.value()})
		}
		for _, v := range a.ustatsW {
			st := a.ustats[v]
			c.shown = append(c.shown, [2]string{" v:" + v, fmtInt(st.f) + "|" + fmtInt(st.n) + "|" + fmtInt(st.x)})
		}
		if a.newestOK && a.newest >= 0 {
			c.shown = append(c.shown, [2]string{" t", fmtInt(int64(a.newest))})
		}
		hs := make([]any, 0, 2*len(c.shown))
		for _, f := range c.shown {
			hs = append(hs, f[0], f[1])
		}
		cmdChunks(g, "HSET", keys.shown, hs)
		za := make([]any, 0, 2*len(a.shownZ))
		for _, z := range a.shownZ {
			za = append(za, fmtFloat(z.Score), z.ID)
		}
		cmdChunks(g, "ZADD", keys.imp, za)
		c.shownZ = a.shownZ
		nz := merged(st.shownAt, a.shownZ)
		if card := len(nz); card > cfg.shownCap {
			c.sTrim = lowest(nz, card-cfg.shownCap)
			old := make([]any, len(c.sTrim))
			for k, it := range c.sTrim {
				old[k] = it
			}
			cmdChunks(g, "HDEL", keys.shown, old)
			g.cmd("ZREMRANGEBYRANK", keys.imp, 0, card-cfg.shownCap-1)
		}
		if cfg.ttl > 0 {
			g.cmd("EXPIRE", keys.imp, cfg.ttl)
			g.cmd("EXPIRE", keys.shown, cfg.ttl)
		}
	}
	if len(attPush) > 0 {
		pa := make([]any, len(attPush))
		for k, e := range attPush {
			pa[k] = e
		}
		cmdChunks(g, "LPUSH", keys.att, pa)
		g.cmd("LTRIM", keys.att, 0, 2*cfg.logCap-1)
		if cfg.ttl > 0 {
			g.cmd("EXPIRE", keys.att, cfg.ttl)
		}
		c.attPush = attPush
	}
	return reply, c, nil
}

// cmdChunks adds command name on key with args, split into commands of
// at most maxGuardedArgs arguments (an even number: pairs stay whole).
func cmdChunks(g *guardedWrite, name, key string, args []any) {
	for i := 0; i < len(args); i += maxGuardedArgs {
		g.cmd(name, key, args[i:min(i+maxGuardedArgs, len(args))]...)
	}
}

// attributionBit is the kind bit of an attributable event type, 0 for
// others.
func attributionBit(t event.Type) int64 {
	switch t {
	case event.Click:
		return 1
	case event.AddToCart:
		return 2
	case event.Purchase:
		return 4
	}
	return 0
}

// value is the shown hash value of r.
func (r *shownRec) value() string {
	b := make([]byte, 0, 48)
	for _, n := range []int64{int64(r.ts), r.n, r.done, r.pos} {
		b = strconv.AppendInt(b, n, 10)
		b = append(b, '|')
	}
	return string(b) + r.via + "|" + r.v + "|" + r.src
}

// parseShownRec parses a shown hash value as the scripts did: four
// unsigned decimal numbers, a one-letter via, the variant and the source;
// nil when malformed.
func parseShownRec(raw string) *shownRec {
	var f [5]string
	rest, ok := cutFields(raw, f[:])
	if !ok {
		return nil
	}
	var nums [4]int64
	for k := 0; k < 4; k++ {
		if !allDigits(f[k]) {
			return nil
		}
		v, err := strconv.ParseInt(f[k], 10, 64)
		if err != nil {
			return nil
		}
		nums[k] = v
	}
	if len(f[4]) != 1 || !isLetter(f[4][0]) {
		return nil
	}
	v, src, ok := strings.Cut(rest, "|")
	if !ok {
		return nil
	}
	return &shownRec{ts: float64(nums[0]), n: nums[1], done: nums[2], pos: nums[3], via: f[4], v: v, src: src}
}

func allDigits(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		if s[i] < '0' || s[i] > '9' {
			return false
		}
	}
	return true
}

func isLetter(c byte) bool { return c >= 'a' && c <= 'z' || c >= 'A' && c <= 'Z' }

func (a *userApply) getRec(it string) *shownRec {
	if a.shown == nil {
		a.shown = make(map[string]*shownRec)
	}
	r, ok := a.shown[it]
	if !ok {
		r = nil
		if raw, ok := a.st.shown[it]; ok {
			r = parseShownRec(raw)
		}
		a.shown[it] = r
	}
	return r
}

func (a *userApply) setRec(it string, r *shownRec) {
	if !r.w {
		r.w = true
		a.shownW = append(a.shownW, it)
	}
	a.shown[it] = r
}

func (a *userApply) userStat(v string) *userStat {
	if a.ustats == nil {
		a.ustats = make(map[string]*userStat)
	}
	st := a.ustats[v]
	if st == nil {
		st = &userStat{}
		if raw, ok := a.st.shown[" v:"+v]; ok {
			if f := strings.Split(raw, "|"); len(f) == 3 && allDigits(f[0]) && allDigits(f[1]) && allDigits(f[2]) {
				x, e1 := strconv.ParseInt(f[0], 10, 64)
				n, e2 := strconv.ParseInt(f[1], 10, 64)
				y, e3 := strconv.ParseInt(f[2], 10, 64)
				if e1 == nil && e2 == nil && e3 == nil {
					st = &userStat{f: x, n: n, x: y}
				}
			}
		}
		a.ustats[v] = st
		a.ustatsW = append(a.ustatsW, v)
	}
	return st
}

func (a *userApply) impNewest() float64 {
	if !a.newestOK {
		a.newestOK = true
		a.newest = -1
		if raw, ok := a.st.shown[" t"]; ok {
			if v, err := strconv.ParseFloat(strings.TrimSpace(raw), 64); err == nil {
				a.newest = v
			}
		}
	}
	return a.newest
}

// impression applies an impression and returns its record.
func (a *userApply) impression(op Op) string {
	ts := float64(op.TS)
	var v string
	var items, sources []string
	if op.Shown != nil {
		v, items, sources = op.Shown.Variant, op.Shown.Items, op.Shown.Sources
	}
	k := int64(0)
	met := make(map[string]bool, len(items))
	for j, it := range items {
		if met[it] {
			continue
		}
		met[it] = true
		k++
		src := ""
		if j < len(sources) {
			src = sources[j]
		}
		old := a.getRec(it)
		cnt := int64(1)
		w := false
		if old != nil {
			cnt, w = old.n+1, old.w
		}
		a.setRec(it, &shownRec{ts: ts, n: cnt, pos: int64(j + 1), via: "i", v: v, src: src, w: w})
		a.shownZ = append(a.shownZ, Scored{ID: it, Score: ts})
	}
	if ts > a.impNewest() {
		a.newest = ts
	}
	st := a.userStat(v)
	first := false
	if st.f%2 == 0 {
		st.f++
		first = true
	}
	dn2 := 2*st.n*k + k*k
	dnx := k * st.x
	st.n += k
	return string(appendImpressionRecord(nil, impressionRecord{Variant: v, First: first, DN2: dn2, DNX: dnx}))
}

// plainID matches Lua's ^[%w_%.:%-]+$.
func plainID(s string) bool {
	if s == "" {
		return false
	}
	for i := 0; i < len(s); i++ {
		c := s[i]
		if !(isLetter(c) || c >= '0' && c <= '9' || c == '_' || c == '.' || c == ':' || c == '-') {
			return false
		}
	}
	return true
}

// attribute attributes an event of kind bit to the showing of its item,
// if any, and returns its record ("" when none).
func (a *userApply) attribute(op Op, bit int64) (string, error) {
	ts := float64(op.TS)
	window := a.cfg.window
	r := a.getRec(op.Item)
	via := ""
	if r != nil && r.ts <= ts && ts-r.ts <= window {
		if (r.done/bit)%2 == 0 {
			via = r.via
		}
	} else if a.cfg.fallback && (a.impNewest() < 0 || ts-a.impNewest() > window) {
		if !a.list.known {
			return "", errNeedList
		}
		if a.list.present && (!plainID(op.Item) || strings.Contains(a.list.raw, `"item":"`+op.Item+`"`)) {
			l := a.listIndex()
			if l != nil {
				if e, ok := l.items[op.Item]; ok && l.ets >= 0 && l.ets <= ts && ts-l.ets <= window {
					w := r != nil && r.w
					r = &shownRec{ts: l.ets, pos: e.pos, via: "l", v: l.variant, src: e.src, w: w}
					a.shownZ = append(a.shownZ, Scored{ID: op.Item, Score: l.ets})
					via = "l"
				}
			}
		}
	}
	if via == "" {
		return "", nil
	}
	r.done += bit
	if bit == 1 {
		r.n = 0
	}
	a.setRec(op.Item, r)
	first := false
	var dx2, dnx int64
	if via == "i" {
		st := a.userStat(r.v)
		if bit == 1 {
			dx2 = 2*st.x + 1
			dnx = st.n
			st.x++
		}
		ub := bit * 2
		if (st.f/ub)%2 == 0 {
			st.f += ub
			first = true
		}
	}
	return string(appendAttributedRecord(nil, attributedRecord{Type: op.Type.String(), Variant: r.v, Via: via,
		Source: r.src, Position: r.pos, First: first, DX2: dx2, DNX: dnx})), nil
}

// listIndex is the user's current list as attribution reads it.
type listIndex struct {
	ets     float64
	variant string
	items   map[string]listPos
}

type listPos struct {
	pos int64
	src string
}

// listIndex decodes the user's list once; nil when it is not a list.
func (a *userApply) listIndex() *listIndex {
	if a.listRead {
		return a.listIdx
	}
	a.listRead = true
	var l map[string]json.RawMessage
	if err := json.Unmarshal([]byte(a.list.raw), &l); err != nil || l == nil {
		return nil
	}
	var items []json.RawMessage
	if raw, ok := l["items"]; !ok {
		return nil
	} else if err := json.Unmarshal(raw, &items); err != nil {
		var obj map[string]json.RawMessage
		if json.Unmarshal(raw, &obj) != nil || obj == nil {
			return nil // not a table
		}
	}
	idx := &listIndex{ets: -1, items: make(map[string]listPos)}
	for i, raw := range items {
		var e map[string]json.RawMessage
		if json.Unmarshal(raw, &e) != nil || e == nil {
			continue
		}
		var it string
		if raw := e["item"]; len(raw) == 0 || raw[0] != '"' || json.Unmarshal(raw, &it) != nil {
			continue // not a string
		}
		if _, ok := idx.items[it]; ok {
			continue
		}
		var src string
		if json.Unmarshal(e["source"], &src) != nil {
			src = ""
		}
		idx.items[it] = listPos{pos: int64(i + 1), src: src}
	}
	var v string
	if json.Unmarshal(l["variant"], &v) == nil {
		idx.variant = v
	}
	if raw, ok := l["event_ts"]; ok {
		var n float64
		var s string
		if json.Unmarshal(raw, &n) == nil {
			idx.ets = n
		} else if json.Unmarshal(raw, &s) == nil {
			if x, err := strconv.ParseFloat(strings.TrimSpace(s), 64); err == nil && !math.IsNaN(x) {
				idx.ets = x
			}
		}
	}
	a.listIdx = idx
	return idx
}
