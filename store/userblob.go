package store

import (
	"bytes"
	"cmp"
	"context"
	"errors"
	"fmt"
	"slices"
	"strings"

	"github.com/redis/go-redis/v9"
	"github.com/vmihailenco/msgpack/v5"
)

// A user's weights, log and purchases are one string key, {u:<id>}:s,
// holding a msgpack blob that the user's owner writes whole, with its
// TTL, in the guarded write of the user's events (userstate.go):
//
//	[version, weights, purchases, log]
//
// version is userBlobVersion; weights a flat array item, weight, item,
// weight, ... (weights as float64), highest first (ZREVRANGE's order:
// weight descending, then item descending), so that a reader of the top
// n stops after n; purchases item, time (unix ms), ... oldest first
// (ZRANGE's order); log the log entries (entry.go), newest first. Written
// and read with the encoder's and decoder's typed calls, as the item
// updates are (itemupdate.go).
//
// A user written by a version that kept these in the keys {u:<id>}:w
// (zset), :log (list) and :buy (zset) has no blob until its next write:
// its owner reads those keys when the blob is absent and the meta hash
// holds n (a write of this version that applies an event leaves a blob,
// so a user that has events and no blob is one of those), and that write
// deletes them.
// Readers read them when the blob is absent.

// userBlobVersion is the format version a blob starts with; readers
// reject versions they do not know.
const userBlobVersion = 1

// errBlobVersion reports a blob of a format version this process does not
// read.
var errBlobVersion = errors.New("unknown user state format version")

// encodeUserBlob encodes a user's weights, purchases (item -> time) and
// log (newest first).
func encodeUserBlob(weights, bought map[string]float64, log []string) []byte {
	ws := make([]Scored, 0, len(weights))
	for it, v := range weights {
		ws = append(ws, Scored{ID: it, Score: v})
	}
	slices.SortFunc(ws, revOrder)
	bs := make([]Scored, 0, len(bought))
	for it, v := range bought {
		bs = append(bs, Scored{ID: it, Score: v})
	}
	slices.SortFunc(bs, func(a, b Scored) int { return revOrder(b, a) })

	size := 8
	for _, w := range ws {
		size += len(w.ID) + 11
	}
	for _, b := range bs {
		size += len(b.ID) + 11
	}
	for _, e := range log {
		size += len(e) + 3
	}
	buf := bytes.NewBuffer(make([]byte, 0, size))
	e := msgpack.GetEncoder()
	defer msgpack.PutEncoder(e)
	e.Reset(buf)
	// Writing to a bytes.Buffer does not fail: the errors are not checked.
	_ = e.EncodeArrayLen(4)
	_ = e.EncodeInt(userBlobVersion)
	_ = e.EncodeArrayLen(2 * len(ws))
	for _, w := range ws {
		_ = e.EncodeString(w.ID)
		_ = e.EncodeFloat64(w.Score)
	}
	_ = e.EncodeArrayLen(2 * len(bs))
	for _, b := range bs {
		_ = e.EncodeString(b.ID)
		_ = e.EncodeInt(int64(b.Score))
	}
	_ = e.EncodeArrayLen(len(log))
	for _, l := range log {
		_ = e.EncodeString(l)
	}
	return buf.Bytes()
}

// userView is what a reader takes of a user's state.
type userView struct {
	weights []Scored // highest first (ZREVRANGE's order)
	bought  []Scored // item, purchase time; oldest first
	log     []string // newest first
}

// viewWant says what of a user's state a reader takes: the weights
// highest n weights, the log newest n entries (each: none when
// negative, all when 0), and the purchases or not.
type viewWant struct {
	weights, log int
	bought       bool
}

// wantAll takes the whole state.
var wantAll = viewWant{bought: true}

// take returns how many of n elements want (as viewWant counts them)
// takes.
func take(want, n int) int {
	switch {
	case want < 0:
		return 0
	case want == 0:
		return n
	}
	return min(want, n)
}

// decodeUserBlob decodes what want takes of a blob; the rest is skipped,
// or, after the weights of a reader that takes nothing else, not read.
func decodeUserBlob(b []byte, want viewWant) (userView, error) {
	var v userView
	d := msgpack.GetDecoder()
	defer msgpack.PutDecoder(d)
	d.Reset(bytes.NewReader(b))
	if _, err := arrayLen(d, 4); err != nil {
		return v, fmt.Errorf("decoding user state: %w", err)
	}
	ver, err := d.DecodeInt()
	if err != nil {
		return v, fmt.Errorf("decoding user state: %w", err)
	}
	if ver != userBlobVersion {
		return v, fmt.Errorf("decoding user state: %w %d", errBlobVersion, ver)
	}
	only := want.log < 0 && !want.bought
	if v.weights, err = decodeScored(d, want.weights, false, !only); err != nil {
		return v, fmt.Errorf("decoding user state weights: %w", err)
	}
	if only {
		return v, nil
	}
	bw := -1
	if want.bought {
		bw = 0
	}
	if v.bought, err = decodeScored(d, bw, true, true); err != nil {
		return v, fmt.Errorf("decoding user state purchases: %w", err)
	}
	if want.log < 0 {
		return v, nil
	}
	n, err := arrayLen(d, -1)
	if err != nil {
		return v, fmt.Errorf("decoding user state log: %w", err)
	}
	v.log = make([]string, take(want.log, n))
	for i := range v.log {
		if v.log[i], err = d.DecodeString(); err != nil {
			return v, fmt.Errorf("decoding user state log: %w", err)
		}
	}
	return v, nil
}

// decodeScored decodes a flat array of names and numbers (integers when
// ints), keeping the first want pairs (as viewWant counts them) and
// skipping the rest when skip (else the decoder is left inside the
// array).
func decodeScored(d *msgpack.Decoder, want int, ints, skip bool) ([]Scored, error) {
	n, err := arrayLen(d, -1)
	if err != nil {
		return nil, err
	}
	if n%2 != 0 {
		return nil, fmt.Errorf("an array of %d elements, want pairs", n)
	}
	keep := take(want, n/2)
	out := make([]Scored, keep)
	for i := range out {
		if out[i].ID, err = d.DecodeString(); err != nil {
			return nil, err
		}
		if ints {
			var t int64
			t, err = d.DecodeInt64()
			out[i].Score = float64(t)
		} else {
			out[i].Score, err = d.DecodeFloat64()
		}
		if err != nil {
			return nil, err
		}
	}
	for range 2 * (n/2 - keep) * boolInt(skip) {
		if err := d.Skip(); err != nil {
			return nil, err
		}
	}
	return out, nil
}

func boolInt(b bool) int {
	if b {
		return 1
	}
	return 0
}

// revOrder is ZREVRANGE's order.
func revOrder(a, b Scored) int {
	if c := cmp.Compare(b.Score, a.Score); c != 0 {
		return c
	}
	return strings.Compare(b.ID, a.ID)
}

// stateRead is a pipelined read of what want takes of users' states: their
// blobs, and the keys of users written before the blob (a second pipeline,
// only for users without a blob).
type stateRead struct {
	s     *Store
	users []string
	want  viewWant
	blobs []*redis.StringCmd
}

// queueStates queues the reads of users' states in pipe.
func (s *Store) queueStates(ctx context.Context, pipe redis.Pipeliner, users []string, want viewWant) *stateRead {
	r := &stateRead{s: s, users: users, want: want, blobs: make([]*redis.StringCmd, len(users))}
	for i, u := range users {
		r.blobs[i] = pipe.Get(ctx, s.keys.UserState(u))
	}
	return r
}

// result returns the states read, per user in queueStates' order, once
// the pipeline ran.
func (r *stateRead) result(ctx context.Context) ([]userView, error) {
	out := make([]userView, len(r.users))
	var old []int
	for i, c := range r.blobs {
		b, err := c.Bytes()
		if errors.Is(err, redis.Nil) {
			old = append(old, i)
			continue
		}
		if err != nil {
			return nil, err
		}
		if out[i], err = decodeUserBlob(b, r.want); err != nil {
			return nil, fmt.Errorf("user %q: %w", r.users[i], err)
		}
	}
	if len(old) == 0 {
		return out, nil
	}
	pipe := r.s.rdb.Pipeline()
	reads := make([]oldStateRead, len(old))
	for j, i := range old {
		reads[j] = r.s.queueOldState(ctx, pipe, r.users[i], r.want)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for j, i := range old {
		out[i] = reads[j].view()
	}
	return out, nil
}

// oldStateRead reads a user's state from the keys of users written before
// the blob.
type oldStateRead struct {
	w, buy *redis.ZSliceCmd
	log    *redis.StringSliceCmd
}

func (s *Store) queueOldState(ctx context.Context, pipe redis.Pipeliner, u string, want viewWant) oldStateRead {
	var r oldStateRead
	if want.weights >= 0 {
		r.w = pipe.ZRevRangeWithScores(ctx, s.keys.UserWeights(u), 0, int64(want.weights-1))
	}
	if want.bought {
		r.buy = pipe.ZRangeWithScores(ctx, s.keys.UserPurchased(u), 0, -1)
	}
	if want.log >= 0 {
		r.log = pipe.LRange(ctx, s.keys.UserLog(u), 0, int64(want.log-1))
	}
	return r
}

func (r oldStateRead) view() userView {
	var v userView
	if r.w != nil {
		v.weights = zs(r.w.Val())
	}
	if r.buy != nil {
		v.bought = zs(r.buy.Val())
	}
	if r.log != nil {
		v.log = r.log.Val()
	}
	return v
}

// UserState is a user's weights, purchases and log as the user's state
// blob holds them.
type UserState struct {
	Weights   []Scored // scaled weights, highest first (weight descending, then item descending)
	Purchased []Scored // item and purchase time (unix ms), oldest first
	Log       []string // log entries (entry.go), newest first
}

// DecodeUserState decodes the value of a user's state key (Keys.UserState).
func DecodeUserState(b []byte) (UserState, error) {
	v, err := decodeUserBlob(b, wantAll)
	return UserState{Weights: v.weights, Purchased: v.bought, Log: v.log}, err
}
