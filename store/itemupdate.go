package store

import (
	"bytes"
	"errors"
	"fmt"
	"slices"

	"github.com/vmihailenco/msgpack/v5"
)

// ItemUpdate is what the events of one source partition's batch add to
// one item, per source offset. The repartition topic
// (kafka.item_updates_topic) carries them in messages of a batch's
// updates of the items of one of its partitions (EncodeItemUpdates),
// keyed by one of those items. The item
// owner applies each contribution whose offset lies above the item's
// fence for Partition and skips the others, so a message delivered
// twice, or sent again by the next owner of the source partition after a
// crash (with other batch boundaries), counts once.
type ItemUpdate struct {
	_msgpack  struct{} `msgpack:",as_array"`
	Item      string
	Partition int32 // the source partition of the events
	Contribs  []ItemContrib
}

// ItemContrib is what one event (its source offset) adds to one item:
// when the event is on the item, its user (recent users, at TS), its
// weight (popularity, trending), its decay when it made the (user, item)
// pair new (degree) and, then, its decay for each of the user's earlier
// items in the item's co-occurrence row (Co); when the item is one of the
// user's earlier items, the event's item in the item's co-occurrence row
// (Co, when the event made its pair new) and the transitions to the
// event's item in its next-item row (Next, next.go).
type ItemContrib struct {
	_msgpack struct{} `msgpack:",as_array"`
	Offset   int64
	User     string // "" when the event is on another item
	TS       int64
	Pop      float64
	Deg      float64
	Co       []ItemPair
	Next     []ItemPair
}

// ItemPair is one name of a row and what it gains.
type ItemPair struct {
	_msgpack struct{} `msgpack:",as_array"`
	ID       string
	V        float64
}

// EncodeItemUpdates encodes updates as one message value: the updates of
// one batch whose items share a partition of the repartition topic. The
// value is a msgpack array of updates, each an array [item, partition,
// contributions], each contribution [offset, user, ts, pop, deg, co,
// next], each pair [id, value] (as msgpack/v5 encodes the types above as
// arrays), written and read with the encoder's and decoder's typed calls
// rather than by reflection, which took a third of an item owner's CPU.
func EncodeItemUpdates(us []ItemUpdate) ([]byte, error) {
	var buf bytes.Buffer
	n := 8
	for i := range us {
		n += EncodedSize(&us[i])
	}
	buf.Grow(n)
	e := msgpack.NewEncoder(&buf)
	err := encodeUpdates(e, us)
	if err != nil {
		return nil, fmt.Errorf("encoding item updates: %w", err)
	}
	return buf.Bytes(), nil
}

func encodeUpdates(e *msgpack.Encoder, us []ItemUpdate) error {
	if err := e.EncodeArrayLen(len(us)); err != nil {
		return err
	}
	for i := range us {
		u := &us[i]
		if err := errors.Join(e.EncodeArrayLen(3), e.EncodeString(u.Item), e.EncodeInt32(u.Partition),
			e.EncodeArrayLen(len(u.Contribs))); err != nil {
			return err
		}
		for j := range u.Contribs {
			c := &u.Contribs[j]
			if err := errors.Join(e.EncodeArrayLen(7), e.EncodeInt(c.Offset), e.EncodeString(c.User), e.EncodeInt(c.TS),
				e.EncodeFloat64(c.Pop), e.EncodeFloat64(c.Deg), encodePairs(e, c.Co), encodePairs(e, c.Next)); err != nil {
				return err
			}
		}
	}
	return nil
}

func encodePairs(e *msgpack.Encoder, ps []ItemPair) error {
	if err := e.EncodeArrayLen(len(ps)); err != nil {
		return err
	}
	for _, p := range ps {
		if err := errors.Join(e.EncodeArrayLen(2), e.EncodeString(p.ID), e.EncodeFloat64(p.V)); err != nil {
			return err
		}
	}
	return nil
}

// DecodeItemUpdates decodes a message value of EncodeItemUpdates; an
// update without an item or with contributions out of offset order is an
// error.
func DecodeItemUpdates(b []byte) ([]ItemUpdate, error) {
	return DecodeItemUpdatesWith(b, nil)
}

// ItemNames interns the item names an item owner decodes (its items and
// the items of their rows' pairs): a popular item is named in the pairs
// of many contributions, and each name read from the table saves an
// allocation. It keeps at most a fixed number of names and starts over
// when full. Not safe for concurrent use.
type ItemNames struct {
	m   map[string]string
	buf []byte
	max int
}

// NewItemNames returns a table of at most max names.
func NewItemNames(max int) *ItemNames {
	return &ItemNames{m: make(map[string]string), max: max}
}

// decode reads a string of at most limit bytes; the table's copy when it
// holds it. Nil reads as "".
func (t *ItemNames) decode(d *msgpack.Decoder, limit int) (string, error) {
	if t == nil {
		return d.DecodeString()
	}
	n, err := d.DecodeBytesLen()
	if err != nil || n < 0 {
		return "", err
	}
	if n > limit {
		return "", fmt.Errorf("a string of %d bytes in a message of %d", n, limit)
	}
	if cap(t.buf) < n {
		t.buf = make([]byte, n)
	}
	b := t.buf[:n]
	if err := d.ReadFull(b); err != nil {
		return "", err
	}
	if s, ok := t.m[string(b)]; ok {
		return s, nil
	}
	if len(t.m) >= t.max {
		clear(t.m)
	}
	s := string(b)
	t.m[s] = s
	return s, nil
}

// DecodeItemUpdatesWith is DecodeItemUpdates reading the item names
// through names (nil: none).
func DecodeItemUpdatesWith(b []byte, names *ItemNames) ([]ItemUpdate, error) {
	d := msgpack.NewDecoder(bytes.NewReader(b))
	us, err := decodeUpdates(d, len(b), names)
	if err != nil {
		return nil, fmt.Errorf("decoding item updates: %w", err)
	}
	for _, u := range us {
		if u.Item == "" {
			return nil, fmt.Errorf("decoding item updates: no item")
		}
		for i := 1; i < len(u.Contribs); i++ {
			if u.Contribs[i].Offset <= u.Contribs[i-1].Offset {
				return nil, fmt.Errorf("decoding item updates: offsets out of order")
			}
		}
	}
	return us, nil
}

// cutPairs returns the pairs of slab from start on (nil for none).
func cutPairs(slab []ItemPair, start int) []ItemPair {
	if len(slab) == start {
		return nil
	}
	return slab[start:len(slab):len(slab)]
}

// EncodedSize is about the bytes of u encoded by EncodeItemUpdates (at
// least them, for item ids and users under 32 bytes).
func EncodedSize(u *ItemUpdate) int {
	n := 8 + len(u.Item)
	for i := range u.Contribs {
		c := &u.Contribs[i]
		n += 38 + len(c.User)
		for _, x := range c.Co {
			n += 11 + len(x.ID)
		}
		for _, x := range c.Next {
			n += 11 + len(x.ID)
		}
	}
	return n
}

// arrayLen reads an array header of want elements (any length when want
// is negative); nil reads as empty.
func arrayLen(d *msgpack.Decoder, want int) (int, error) {
	n, err := d.DecodeArrayLen()
	if err != nil {
		return 0, err
	}
	n = max(n, 0)
	if want >= 0 && n != want {
		return 0, fmt.Errorf("an array of %d elements, want %d", n, want)
	}
	return n, nil
}

func decodeUpdates(d *msgpack.Decoder, size int, names *ItemNames) ([]ItemUpdate, error) {
	n, err := arrayLen(d, -1)
	if err != nil {
		return nil, err
	}
	us := make([]ItemUpdate, n)
	// The pairs of every contribution go in one slab (a pair takes at
	// least 11 bytes; with the contributions around them a message holds
	// about 30 bytes per pair); a contribution's pairs are cut from
	// it as they are appended: when the slab grows, the pairs cut before
	// stay in the old array.
	pairs := make([]ItemPair, 0, size/24)
	for i := range us {
		u := &us[i]
		if _, err := arrayLen(d, 3); err != nil {
			return nil, err
		}
		if u.Item, err = names.decode(d, size); err != nil {
			return nil, err
		}
		if u.Partition, err = d.DecodeInt32(); err != nil {
			return nil, err
		}
		nc, err := arrayLen(d, -1)
		if err != nil {
			return nil, err
		}
		u.Contribs = make([]ItemContrib, nc)
		for j := range u.Contribs {
			c := &u.Contribs[j]
			if _, err := arrayLen(d, 7); err != nil {
				return nil, err
			}
			if c.Offset, err = d.DecodeInt64(); err != nil {
				return nil, err
			}
			if c.User, err = d.DecodeString(); err != nil {
				return nil, err
			}
			if c.TS, err = d.DecodeInt64(); err != nil {
				return nil, err
			}
			if c.Pop, err = d.DecodeFloat64(); err != nil {
				return nil, err
			}
			if c.Deg, err = d.DecodeFloat64(); err != nil {
				return nil, err
			}
			if pairs, c.Co, err = decodePairs(d, pairs, names, size); err != nil {
				return nil, err
			}
			if pairs, c.Next, err = decodePairs(d, pairs, names, size); err != nil {
				return nil, err
			}
		}
	}
	return us, nil
}

// decodePairs appends an array of pairs to slab and returns it and the
// pairs appended (nil for none).
func decodePairs(d *msgpack.Decoder, slab []ItemPair, names *ItemNames, size int) (_, ps []ItemPair, err error) {
	n, err := arrayLen(d, -1)
	if err != nil || n == 0 {
		return slab, nil, err
	}
	start := len(slab)
	for range n {
		if _, err := arrayLen(d, 2); err != nil {
			return slab, nil, err
		}
		id, err := names.decode(d, size)
		if err != nil {
			return slab, nil, err
		}
		v, err := d.DecodeFloat64()
		if err != nil {
			return slab, nil, err
		}
		if len(slab) == cap(slab) && start > 0 {
			// a new slab: the pairs cut before stay in the old one
			slab = append(make([]ItemPair, 0, max(cap(slab), 2*(len(slab)-start)+16)), slab[start:]...)
			start = 0
		}
		slab = append(slab, ItemPair{ID: id, V: v})
	}
	return slab, slab[start:len(slab):len(slab)], nil
}

// TakeUpdates returns the item half w holds as one update per item, its
// contributions per source offset in offset order, and drops it from w;
// the experiment counters stay in w for ApplyItems, and w still counts
// the events (Events, Since) until ApplyItems empties it.
func (w *ItemWork) TakeUpdates() []ItemUpdate {
	if len(w.evs) == 0 {
		return nil
	}
	order, touch := w.index()
	out := make([]ItemUpdate, 0, len(order))
	// One slab of contributions and one of pairs (room for all of them)
	// for every update.
	nc := 0
	for _, it := range order {
		nc += len(touch[it])
	}
	contribs := make([]ItemContrib, 0, nc)
	np := 0 // at least the pairs: each event's history twice, its earlier items twice
	for i := range w.evs {
		np += 2*len(w.evs[i].hist) + 2*len(w.evs[i].prev)
	}
	pairs := make([]ItemPair, 0, np)
	for _, it := range order {
		start := len(contribs)
		for _, i := range touch[it] {
			e := &w.evs[i]
			c := ItemContrib{Offset: e.off}
			ps := len(pairs)
			if e.item == it {
				c.User, c.TS, c.Pop = e.user, e.ts, e.weight
				if e.isNew {
					c.Deg = e.decay
				}
				for _, h := range e.hist {
					pairs = append(pairs, ItemPair{ID: w.names[h], V: e.decay})
				}
				c.Co = cutPairs(pairs, ps)
			} else {
				if slices.Contains(e.hist, it) {
					pairs = append(pairs, ItemPair{ID: w.names[e.item], V: e.decay})
				}
				c.Co = cutPairs(pairs, ps)
				ps = len(pairs)
				if k := slices.Index(e.prev, it); k >= 0 {
					v := e.weight * closeness(k)
					pairs = append(pairs, ItemPair{ID: w.names[e.item], V: v})
					if e.isBuy {
						pairs = append(pairs, ItemPair{ID: w.names[e.bought], V: v})
					}
				}
				c.Next = cutPairs(pairs, ps)
			}
			contribs = append(contribs, c)
		}
		u := ItemUpdate{Item: w.names[it], Partition: w.partition, Contribs: contribs[start:len(contribs):len(contribs)]}
		out = append(out, u)
	}
	clear(w.ids)
	w.names = w.names[:0]
	w.evs = w.evs[:0]
	return out
}
