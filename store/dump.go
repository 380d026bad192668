package store

import (
	"context"
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
	"unsafe"

	"github.com/redis/go-redis/v9"
)

// A user's whole weights vector is read with DUMP, not ZREVRANGE
// WITHSCORES, where the server's serialization is one this file decodes
// (Redis 7.0 and later): Redis 7.0 formats every score of a WITHSCORES
// reply with %.17g, while DUMP copies the scores as they are stored
// (docs/benchmarks.md, 29, measures both). Anything else (an older server,
// a server without DUMP, an ACL without it) makes the store read with
// ZREVRANGE from then on.

// RDB object types of a sorted set's DUMP payload (Redis rdb.h).
const (
	rdbTypeZSet2        = 5  // skiplist: members with binary doubles, greatest first
	rdbTypeZSetListpack = 17 // listpack: member and score entries, smallest first
)

// errDumpFormat reports a DUMP payload this decoder does not read.
var errDumpFormat = errors.New("unsupported DUMP payload")

// decodeZSetDump returns the n highest-scored members of the sorted set
// whose DUMP payload is p (all when n <= 0), in ZREVRANGE's order: score
// descending, then member descending. Only those members are converted; the
// rest of the payload is walked to check its structure.
func decodeZSetDump(p []byte, n int) ([]Scored, error) {
	// payload: type byte, object, RDB version (2 bytes), CRC64 (8 bytes)
	if len(p) < 11 {
		return nil, fmt.Errorf("%w: %d bytes", errDumpFormat, len(p))
	}
	r := rdbReader{b: p[1 : len(p)-10]}
	var out []Scored
	var err error
	switch p[0] {
	case rdbTypeZSet2:
		out, err = r.zset2(n)
	case rdbTypeZSetListpack:
		out, err = r.zsetListpack(n)
	default:
		return nil, fmt.Errorf("%w: object type %d", errDumpFormat, p[0])
	}
	if err != nil {
		return nil, err
	}
	if len(r.b) != 0 {
		return nil, fmt.Errorf("%w: %d bytes after the object", errDumpFormat, len(r.b))
	}
	// Both encodings keep members ordered, as ZREVRANGE relies on: a payload
	// out of that order is not one this decoder understands.
	if !slices.IsSortedFunc(out, revOrder) {
		return nil, fmt.Errorf("%w: members out of order", errDumpFormat)
	}
	return out, nil
}

// rdbReader reads RDB encodings from b, advancing it.
type rdbReader struct{ b []byte }

func (r *rdbReader) take(n int) ([]byte, error) {
	if n < 0 || n > len(r.b) {
		return nil, fmt.Errorf("%w: truncated", errDumpFormat)
	}
	v := r.b[:n]
	r.b = r.b[n:]
	return v, nil
}

// length reads an RDB length; special reports the special string encodings
// (integers, LZF), whose kind is then in n.
func (r *rdbReader) length() (n uint64, special bool, err error) {
	h, err := r.take(1)
	if err != nil {
		return 0, false, err
	}
	switch b := h[0]; b >> 6 {
	case 0:
		return uint64(b & 0x3f), false, nil
	case 1:
		x, err := r.take(1)
		if err != nil {
			return 0, false, err
		}
		return uint64(b&0x3f)<<8 | uint64(x[0]), false, nil
	case 2:
		switch b {
		case 0x80:
			x, err := r.take(4)
			if err != nil {
				return 0, false, err
			}
			return uint64(binary.BigEndian.Uint32(x)), false, nil
		case 0x81:
			x, err := r.take(8)
			if err != nil {
				return 0, false, err
			}
			return binary.BigEndian.Uint64(x), false, nil
		}
		return 0, false, fmt.Errorf("%w: length encoding %#x", errDumpFormat, b)
	default:
		return uint64(b & 0x3f), true, nil
	}
}

// count reads a length that counts elements still to be read from r.
func (r *rdbReader) count(minSize int) (int, error) {
	n, special, err := r.length()
	if err != nil {
		return 0, err
	}
	if special || n > uint64(len(r.b)/minSize) {
		return 0, fmt.Errorf("%w: bad element count", errDumpFormat)
	}
	return int(n), nil
}

// str reads an RDB string: raw (a slice of the payload), an integer, or
// LZF-compressed. With skip it only checks the encoding and returns nil.
func (r *rdbReader) str(skip bool) ([]byte, error) {
	n, special, err := r.length()
	if err != nil {
		return nil, err
	}
	if !special {
		if n > uint64(len(r.b)) {
			return nil, fmt.Errorf("%w: truncated", errDumpFormat)
		}
		return r.take(int(n))
	}
	switch n {
	case 0, 1, 2: // 8, 16, 32-bit little-endian integer
		x, err := r.take(1 << n)
		if err != nil || skip {
			return nil, err
		}
		var v int64
		switch n {
		case 0:
			v = int64(int8(x[0]))
		case 1:
			v = int64(int16(binary.LittleEndian.Uint16(x)))
		default:
			v = int64(int32(binary.LittleEndian.Uint32(x)))
		}
		return strconv.AppendInt(nil, v, 10), nil
	case 3: // LZF: compressed length, length, data
		clen, s1, err := r.length()
		if err != nil {
			return nil, err
		}
		ulen, s2, err := r.length()
		if err != nil {
			return nil, err
		}
		if s1 || s2 || clen > uint64(len(r.b)) || ulen > 1<<30 {
			return nil, fmt.Errorf("%w: bad LZF header", errDumpFormat)
		}
		c, _ := r.take(int(clen))
		if skip {
			return nil, nil
		}
		return lzfDecompress(c, int(ulen))
	}
	return nil, fmt.Errorf("%w: string encoding %d", errDumpFormat, n)
}

// zset2 reads a skiplist-encoded sorted set: members with binary doubles,
// greatest first (rdb.c saves the skiplist from its tail); it converts the
// first n.
func (r *rdbReader) zset2(n int) ([]Scored, error) {
	total, err := r.count(9)
	if err != nil {
		return nil, err
	}
	keep := total
	if n > 0 {
		keep = min(n, total)
	}
	out := make([]Scored, 0, keep)
	for i := range total {
		m, err := r.str(i >= keep)
		if err != nil {
			return nil, err
		}
		x, err := r.take(8)
		if err != nil {
			return nil, err
		}
		if i < keep {
			out = append(out, Scored{ID: string(m), Score: math.Float64frombits(binary.LittleEndian.Uint64(x))})
		}
	}
	return out, nil
}

// zsetListpack reads a listpack-encoded sorted set: a listpack of member,
// score pairs, smallest first; it converts the last n, greatest first.
func (r *rdbReader) zsetListpack(n int) ([]Scored, error) {
	lp, err := r.str(false)
	if err != nil {
		return nil, err
	}
	// header: total bytes (4), element count (2); entries; 0xff
	if len(lp) < 7 || int(binary.LittleEndian.Uint32(lp)) != len(lp) || lp[len(lp)-1] != 0xff {
		return nil, fmt.Errorf("%w: bad listpack header", errDumpFormat)
	}
	body := lp[6 : len(lp)-1]
	// The header counts the entries while they are fewer than 65535.
	entries := int(binary.LittleEndian.Uint16(lp[4:]))
	if entries == 65535 {
		entries = 0
		for b := body; len(b) > 0; entries++ {
			if _, b, err = lpEntry(b); err != nil {
				return nil, err
			}
		}
	}
	if entries%2 != 0 {
		return nil, fmt.Errorf("%w: odd listpack entries", errDumpFormat)
	}
	total := entries / 2
	keep := total
	if n > 0 {
		keep = min(n, total)
	}
	out := make([]Scored, keep)
	b := body
	for i := range total {
		var m, sc lpValue
		if m, b, err = lpEntry(b); err != nil {
			return nil, err
		}
		if sc, b, err = lpEntry(b); err != nil {
			return nil, err
		}
		if i < total-keep {
			continue
		}
		score, err := sc.float()
		if err != nil {
			return nil, err
		}
		out[total-1-i] = Scored{ID: m.string(), Score: score}
	}
	if len(b) != 0 {
		return nil, fmt.Errorf("%w: listpack entries beyond its count", errDumpFormat)
	}
	return out, nil
}

// lpValue is a listpack entry's value: a string (raw, a slice of the
// listpack) or an integer.
type lpValue struct {
	raw   []byte
	ival  int64
	isInt bool
}

func (v lpValue) string() string {
	if v.isInt {
		return strconv.FormatInt(v.ival, 10)
	}
	return string(v.raw)
}

func (v lpValue) float() (float64, error) {
	if v.isInt {
		return float64(v.ival), nil
	}
	f, err := strconv.ParseFloat(string(v.raw), 64)
	if err != nil {
		return 0, fmt.Errorf("%w: score %q", errDumpFormat, v.raw)
	}
	return f, nil
}

// lpEntry reads one listpack entry of b (Redis listpack.c): its value and
// what follows its back-length.
func lpEntry(b []byte) (v lpValue, rest []byte, err error) {
	if len(b) == 0 {
		return v, nil, fmt.Errorf("%w: listpack truncated", errDumpFormat)
	}
	var size int // encoding and data
	v.isInt = true
	switch c := b[0]; {
	case c&0x80 == 0: // 7-bit unsigned integer
		size, v.ival = 1, int64(c&0x7f)
	case c&0xc0 == 0x80: // 6-bit length string
		size, v.isInt = 1+int(c&0x3f), false
		v.raw = b[1:min(size, len(b))]
	case c&0xe0 == 0xc0: // 13-bit signed integer
		if len(b) < 2 {
			break
		}
		size, v.ival = 2, signed(uint64(c&0x1f)<<8|uint64(b[1]), 13)
	case c&0xf0 == 0xe0: // 12-bit length string
		if len(b) < 2 {
			break
		}
		size, v.isInt = 2+(int(c&0x0f)<<8|int(b[1])), false
		v.raw = b[2:min(size, len(b))]
	case c == 0xf0: // 32-bit length string
		if len(b) < 5 {
			break
		}
		l := binary.LittleEndian.Uint32(b[1:])
		if uint64(l) > uint64(len(b)) {
			return v, nil, fmt.Errorf("%w: listpack truncated", errDumpFormat)
		}
		size, v.isInt = 5+int(l), false
		v.raw = b[5:min(size, len(b))]
	case c >= 0xf1 && c <= 0xf4: // 16, 24, 32, 64-bit signed integer
		bits := [...]int{16, 24, 32, 64}[c-0xf1]
		size = 1 + bits/8
		if len(b) < size {
			break
		}
		var u uint64
		for i := bits/8 - 1; i >= 0; i-- {
			u = u<<8 | uint64(b[1+i])
		}
		v.ival = signed(u, bits)
	default:
		return v, nil, fmt.Errorf("%w: listpack encoding %#x", errDumpFormat, c)
	}
	if size == 0 || size > len(b) {
		return v, nil, fmt.Errorf("%w: listpack truncated", errDumpFormat)
	}
	back := backlenSize(size)
	if size+back > len(b) {
		return v, nil, fmt.Errorf("%w: listpack truncated", errDumpFormat)
	}
	return v, b[size+back:], nil
}

// signed reads the two's complement integer of the low bits of u.
func signed(u uint64, bits int) int64 {
	if bits < 64 && u >= 1<<(bits-1) {
		return int64(u) - 1<<bits
	}
	return int64(u)
}

// backlenSize is the size of a listpack entry's back-length field for an
// entry of size bytes (listpack.c lpEncodeBacklen).
func backlenSize(size int) int {
	switch {
	case size <= 127:
		return 1
	case size < 16383:
		return 2
	case size < 2097151:
		return 3
	case size < 268435455:
		return 4
	}
	return 5
}

// errLZF is lzfDecompress's error, made once: decompressing is on the
// scorer's read path.
var errLZF = fmt.Errorf("%w: corrupt LZF data", errDumpFormat)

// lzfDecompress decompresses LZF data (liblzf's lzf_d.c, as Redis uses it)
// into exactly n bytes.
func lzfDecompress(in []byte, n int) ([]byte, error) {
	out := make([]byte, 0, n)
	for i := 0; i < len(in); {
		ctrl := int(in[i])
		i++
		if ctrl < 1<<5 { // literal run of ctrl+1 bytes
			l := ctrl + 1
			if i+l > len(in) || len(out)+l > n {
				return nil, errLZF
			}
			out = append(out, in[i:i+l]...)
			i += l
			continue
		}
		l := ctrl >> 5 // back reference
		if l == 7 {
			if i >= len(in) {
				return nil, errLZF
			}
			l += int(in[i])
			i++
		}
		if i >= len(in) {
			return nil, errLZF
		}
		ref := len(out) - (ctrl&0x1f)<<8 - 1 - int(in[i])
		i++
		l += 2
		if ref < 0 || len(out)+l > n {
			return nil, errLZF
		}
		if ref+l <= len(out) {
			out = append(out, out[ref:ref+l]...)
		} else { // overlaps what it appends: byte by byte
			for k := 0; k < l; k++ {
				out = append(out, out[ref+k])
			}
		}
	}
	if len(out) != n {
		return nil, errLZF
	}
	return out, nil
}

// dumpFrom is the least n, as a fraction of the user's cap, for which a read
// of a user's n highest weights uses DUMP, which sends them all: DUMP saves
// Redis time when most of the set is read, and costs the process more when
// only its head is (store.BenchmarkUserWeights; docs/benchmarks.md, 29).
const dumpFrom = 0.5

// weightsRead is a pipelined read of the n highest weights of users: DUMP
// while the server answers it in a form decodeZSetDump reads, else
// ZREVRANGE WITHSCORES.
type weightsRead struct {
	s    *Store
	n    int
	keys []string
	dump []*redis.StringCmd
	zr   []*redis.ZSliceCmd
}

// queueWeights queues the reads of users' weights in pipe.
func (s *Store) queueWeights(ctx context.Context, pipe redis.Pipeliner, users []string, n int) *weightsRead {
	w := &weightsRead{s: s, n: n, keys: make([]string, len(users))}
	useDump := !s.dumpOff.Load() && (n <= 0 || float64(n) >= dumpFrom*float64(s.opt.UserItemsCap))
	for i, u := range users {
		w.keys[i] = s.keys.UserWeights(u)
		if useDump {
			w.dump = append(w.dump, pipe.Dump(ctx, w.keys[i]))
		} else {
			w.zr = append(w.zr, pipe.ZRevRangeWithScores(ctx, w.keys[i], 0, int64(n-1)))
		}
	}
	return w
}

// pipeErr returns the first error of cmds other than redis.Nil and other
// than the replies of DUMP, which weightsRead.result handles.
func pipeErr(cmds []redis.Cmder) error {
	for _, c := range cmds {
		if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) && c.Name() != "dump" {
			return err
		}
	}
	return nil
}

// dumpUnusable logs why DUMP is off: a warning when an ACL refuses it (the
// documented ACL allows it), else a note (a server whose payload this
// decoder does not read, such as Redis before 7.0 or miniredis).
func (s *Store) dumpUnusable(err error) {
	if strings.Contains(err.Error(), "NOPERM") {
		s.opt.Logger.Warn("reading user weights with ZREVRANGE WITHSCORES, which costs Redis more: the ACL user lacks +dump (docs/security.md)", "err", err)
		return
	}
	s.opt.Logger.Info("reading user weights with ZREVRANGE WITHSCORES: this server's DUMP of a sorted set is not one recstream decodes", "err", err)
}

// exec runs pipe, in which the weights were queued, and returns them as
// result does; an error of another command than DUMP (redis.Nil aside)
// is returned.
func (w *weightsRead) exec(ctx context.Context, pipe redis.Pipeliner) ([][]Scored, error) {
	cmds, _ := pipe.Exec(ctx)
	if err := pipeErr(cmds); err != nil {
		return nil, err
	}
	return w.result(ctx)
}

// result returns the weights read, per user in queueWeights' order, after
// the pipeline ran. A DUMP reply it cannot decode, or a server error for
// DUMP, turns DUMP off for this store (with a warning) and reads those users
// again with ZREVRANGE WITHSCORES.
func (w *weightsRead) result(ctx context.Context) ([][]Scored, error) {
	out := make([][]Scored, len(w.keys))
	if w.dump == nil {
		for i, c := range w.zr {
			if err := c.Err(); err != nil && !errors.Is(err, redis.Nil) {
				return nil, err
			}
			out[i] = zs(c.Val())
		}
		return out, nil
	}
	var again []int
	for i, c := range w.dump {
		v, err := c.Result()
		if errors.Is(err, redis.Nil) {
			out[i] = []Scored{} // as ZREVRANGE answers a missing key
			continue
		}
		var reply redis.Error
		if err != nil && !errors.As(err, &reply) {
			return nil, err
		}
		if err == nil {
			// The payload is only read: a view of the reply, not a copy.
			out[i], err = decodeZSetDump(unsafe.Slice(unsafe.StringData(v), len(v)), w.n)
		}
		if err != nil {
			if w.s.dumpOff.CompareAndSwap(false, true) {
				w.s.dumpUnusable(err)
			}
			again = append(again, i)
		}
	}
	if len(again) == 0 {
		return out, nil
	}
	pipe := w.s.rdb.Pipeline()
	zr := make([]*redis.ZSliceCmd, len(again))
	for k, i := range again {
		zr[k] = pipe.ZRevRangeWithScores(ctx, w.keys[i], 0, int64(w.n-1))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, err
	}
	for k, i := range again {
		out[i] = zs(zr[k].Val())
	}
	return out, nil
}
