package store

import (
	"encoding/binary"
	"errors"
	"fmt"
	"math"
	"strconv"
	"strings"
)

// Entry formats: the strings stored in Redis lists and hash values whose
// parts recstream reads back (docs/keys.md is the contract). Each format
// has one Go type, an append function that writes it and a parse function
// that reads it; every Go reader and writer goes through them. Where a Lua
// script writes a format, its parse function accepts every entry the
// script writes and its append function writes that entry back byte for
// byte. A parse function never panics: a malformed entry is an error
// wrapping errEntry, and each caller decides what to do with it (leave it
// out, count it).
//
// # User log entry ({u:<id>}:log, written by userstate.go)
//
//	<offset>|<partition>|<type>|<ts>|<new>|<item>
//
// offset, partition and ts in decimal; new is 1 when the event made its
// item new for the user, else 0; the item comes last and may hold '|'.
// Type LoggedEvent; appendLogEntry, parseLogEntry, and logEntryItem,
// which reads the item alone.
//
// # Attribution log entry ({u:<id>}:att, written by userstate.go)
//
//	<offset>|<partition>|<record>
//
// record is an attribution record. Type attEntry; appendAttEntry,
// parseAttEntry.
//
// # Attribution record (decided by userstate.go, and in the attribution log)
//
//	i|<variant>|<first>|<Δn²>|<Δnx>                                   an impression
//	a|<type>|<variant>|<via>|<source>|<position>|<first>|<Δx²>|<Δnx>  an attributed event
//
// first is 1 for the user's first impression in the variant (for an
// attributed event: the user's first of its type in the variant), else 0;
// via is i (an impression) or l (the user's list); position is 1-based;
// the other numbers are decimal integers. No field holds '|'. Types
// impressionRecord, attributedRecord; the append and parse functions of
// each.
//
// # Shown item ({u:<id>}:imd hash value of an item, written by userstate.go)
//
//	<ts>|<n>|<done>|<pos>|<via>|<variant>|<source>
//
// decimal numbers; the source comes last and may hold '|'. Type ShownItem
// (without Item, the hash field); appendShownValue, parseShownValue.
//
// # Row entries ({i:<id>}:cl and {i:<id>}:nx lists)
//
// Written by the store and appended by lua/item.lua and
// lua/forget_item.lua as they are; lua/cooc_fold.lua compares them whole.
//
//	s<pairs>                               rowFolded: the row folded so far (first entry only)
//	d<partition>:<first>-<last>|<pairs>    rowDelta: a source partition's offsets first..last; each name gains its value
//	c<partition>:<offset>|<value>|<items>  rowEvent: one event; each item ('\n'-joined) gains value
//	                                       (written by versions before d, still read)
//	e<erasure>|<name>\t<amount>\n...       rowErasure: an erasure; each name loses its amount
//
// pairs are (uvarint name length, name, float64 little-endian) with no
// separator; partition and offsets are non-negative decimal integers;
// value and amount decimal floats (written as %.17g, read as strconv
// reads them). Names are items, and in a next-item row also purchase
// names (boughtName). Names never hold '\n' (ids hold no control
// characters); an erasure id holds no '|'. Types rowDeltaEntry,
// rowEventEntry, rowErasureEntry ([]Scored for a folded row); the append
// and parse functions of each, and countPairs and nextPair, which read a
// binary entry's pairs in place.

// errEntry is wrapped by every parse error of an entry.
var errEntry = errors.New("malformed entry")

// entryError returns a parse error of entry e of the named format.
func entryError(format, e, why string) error {
	return fmt.Errorf("%w: %s %.40q: %s", errEntry, format, e, why)
}

// cutFields splits the first len(f) '|'-terminated fields of e into f and
// returns the rest, or false when e has fewer.
func cutFields(e string, f []string) (string, bool) {
	for k := range f {
		i := strings.IndexByte(e, '|')
		if i < 0 {
			return "", false
		}
		f[k], e = e[:i], e[i+1:]
	}
	return e, true
}

// parseBit parses a 0/1 field.
func parseBit(s string) (bool, bool) {
	switch s {
	case "0":
		return false, true
	case "1":
		return true, true
	}
	return false, false
}

func appendBit(dst []byte, b bool) []byte {
	if b {
		return append(dst, '1')
	}
	return append(dst, '0')
}

// parseInt parses a decimal integer of at most bits bits, as
// strconv.ParseInt does.
func parseInt(s string, bits int) (int64, bool) {
	if v, ok := parseDigits(s, bits); ok {
		return v, true
	}
	v, err := strconv.ParseInt(s, 10, bits)
	return v, err == nil
}

// parseUint parses a non-negative decimal integer below 2^bits, without a
// sign (a '-' separates the offsets of a delta header).
func parseUint(s string, bits int) (int64, bool) {
	if v, ok := parseDigits(s, bits+1); ok {
		return v, true
	}
	v, err := strconv.ParseUint(s, 10, bits)
	return int64(v), err == nil
}

// parseDigits parses the common case of both: 1 to 18 digits, of a value
// that fits a signed integer of bits bits; false for anything else.
func parseDigits(s string, bits int) (int64, bool) {
	if len(s) == 0 || len(s) > 18 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(s); i++ {
		c := s[i] - '0'
		if c > 9 {
			return 0, false
		}
		v = v*10 + int64(c)
	}
	return v, bits >= 64 || v < 1<<(bits-1)
}

// User log entry.

// appendLogEntry appends the user log entry of e.
func appendLogEntry(dst []byte, e LoggedEvent) []byte {
	dst = strconv.AppendInt(dst, e.Offset, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(e.Partition), 10)
	dst = append(dst, '|')
	dst = append(dst, e.Type...)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, e.TS, 10)
	dst = append(dst, '|')
	dst = appendBit(dst, e.New)
	dst = append(dst, '|')
	return append(dst, e.Item...)
}

// parseLogEntry parses a user log entry.
func parseLogEntry(e string) (LoggedEvent, error) {
	var f [5]string
	item, ok := cutFields(e, f[:])
	if !ok {
		return LoggedEvent{}, entryError("user log entry", e, "fewer than 6 fields")
	}
	off, ok1 := parseInt(f[0], 64)
	p, ok2 := parseInt(f[1], 32)
	ts, ok3 := parseInt(f[3], 64)
	isNew, ok4 := parseBit(f[4])
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return LoggedEvent{}, entryError("user log entry", e, "bad offset, partition, time or new flag")
	}
	return LoggedEvent{Offset: off, Partition: int32(p), Type: f[2], TS: ts, New: isNew, Item: item}, nil
}

// logEntryItem returns the item of a user log entry, checking only that
// the entry has its six fields: the history of an event reads nothing
// else, of many entries per event.
func logEntryItem(e string) (string, error) {
	var f [5]string
	item, ok := cutFields(e, f[:])
	if !ok {
		return "", entryError("user log entry", e, "fewer than 6 fields")
	}
	return item, nil
}

// Attribution log entry.

// attEntry is an entry of the attribution log: an event's offset and
// partition and the attribution record decided for it.
type attEntry struct {
	Offset    int64
	Partition int32
	Record    string
}

func appendAttEntry(dst []byte, e attEntry) []byte {
	dst = strconv.AppendInt(dst, e.Offset, 10)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, int64(e.Partition), 10)
	dst = append(dst, '|')
	return append(dst, e.Record...)
}

func parseAttEntry(e string) (attEntry, error) {
	var f [2]string
	rec, ok := cutFields(e, f[:])
	if !ok {
		return attEntry{}, entryError("attribution log entry", e, "fewer than 3 fields")
	}
	off, ok1 := parseInt(f[0], 64)
	p, ok2 := parseInt(f[1], 32)
	if !ok1 || !ok2 {
		return attEntry{}, entryError("attribution log entry", e, "bad offset or partition")
	}
	return attEntry{Offset: off, Partition: int32(p), Record: rec}, nil
}

// Attribution records.

// impressionRecord is what an impression adds to the experiment counters
// of its variant: a user exposed (First), and the increments of the sums
// of n² and n·x (docs in experiment.go).
type impressionRecord struct {
	Variant  string
	First    bool
	DN2, DNX int64
}

// attributedRecord is an event attributed to a showing: its type, the
// showing's variant, via (i an impression, l the user's list), source and
// 1-based position; First when it is the user's first of its type in the
// variant, and the increments of the sums of x² and n·x.
type attributedRecord struct {
	Type, Variant, Via, Source string
	Position                   int64
	First                      bool
	DX2, DNX                   int64
}

// Kinds of attribution records: the first byte.
const (
	recImpression = 'i'
	recAttributed = 'a'
)

func appendImpressionRecord(dst []byte, r impressionRecord) []byte {
	dst = append(dst, "i|"...)
	dst = append(dst, r.Variant...)
	dst = append(dst, '|')
	dst = appendBit(dst, r.First)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, r.DN2, 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, r.DNX, 10)
}

func parseImpressionRecord(s string) (impressionRecord, error) {
	f := strings.Split(s, "|")
	if len(f) != 5 || f[0] != "i" {
		return impressionRecord{}, entryError("impression record", s, "not 5 fields starting with i")
	}
	first, ok1 := parseBit(f[2])
	dn2, ok2 := parseInt(f[3], 64)
	dnx, ok3 := parseInt(f[4], 64)
	if !ok1 || !ok2 || !ok3 {
		return impressionRecord{}, entryError("impression record", s, "bad number")
	}
	return impressionRecord{Variant: f[1], First: first, DN2: dn2, DNX: dnx}, nil
}

func appendAttributedRecord(dst []byte, r attributedRecord) []byte {
	dst = append(dst, "a|"...)
	for _, s := range []string{r.Type, r.Variant, r.Via, r.Source} {
		dst = append(dst, s...)
		dst = append(dst, '|')
	}
	dst = strconv.AppendInt(dst, r.Position, 10)
	dst = append(dst, '|')
	dst = appendBit(dst, r.First)
	dst = append(dst, '|')
	dst = strconv.AppendInt(dst, r.DX2, 10)
	dst = append(dst, '|')
	return strconv.AppendInt(dst, r.DNX, 10)
}

func parseAttributedRecord(s string) (attributedRecord, error) {
	f := strings.Split(s, "|")
	if len(f) != 9 || f[0] != "a" {
		return attributedRecord{}, entryError("attributed record", s, "not 9 fields starting with a")
	}
	pos, ok1 := parseInt(f[5], 64)
	first, ok2 := parseBit(f[6])
	dx2, ok3 := parseInt(f[7], 64)
	dnx, ok4 := parseInt(f[8], 64)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return attributedRecord{}, entryError("attributed record", s, "bad number")
	}
	return attributedRecord{Type: f[1], Variant: f[2], Via: f[3], Source: f[4], Position: pos, First: first, DX2: dx2, DNX: dnx}, nil
}

// Shown item.

// appendShownValue appends the shown hash value of x (x.Item is the
// field, not part of the value).
func appendShownValue(dst []byte, x ShownItem) []byte {
	for _, n := range []int64{x.TS, int64(x.Unseen), int64(x.Done), int64(x.Pos)} {
		dst = strconv.AppendInt(dst, n, 10)
		dst = append(dst, '|')
	}
	dst = append(dst, x.Via...)
	dst = append(dst, '|')
	dst = append(dst, x.Variant...)
	dst = append(dst, '|')
	return append(dst, x.Source...)
}

// parseShownValue parses a shown hash value; Item is left empty.
func parseShownValue(v string) (ShownItem, error) {
	var f [6]string
	src, ok := cutFields(v, f[:])
	if !ok {
		return ShownItem{}, entryError("shown item", v, "fewer than 7 fields")
	}
	ts, ok1 := parseInt(f[0], 64)
	n, ok2 := parseInt(f[1], strconv.IntSize)
	done, ok3 := parseInt(f[2], strconv.IntSize)
	pos, ok4 := parseInt(f[3], strconv.IntSize)
	if !ok1 || !ok2 || !ok3 || !ok4 {
		return ShownItem{}, entryError("shown item", v, "bad number")
	}
	return ShownItem{TS: ts, Unseen: int(n), Done: int(done), Pos: int(pos), Via: f[4], Variant: f[5], Source: src}, nil
}

// Row entries.

// Kinds of row entries: the first byte.
const (
	rowFolded  = 's'
	rowDelta   = 'd'
	rowEvent   = 'c'
	rowErasure = 'e'
)

// entryKind returns the kind of a row entry (its first byte), 0 for an empty
// one.
func entryKind(e string) byte {
	if e == "" {
		return 0
	}
	return e[0]
}

// rowDeltaEntry is a delta entry: the summed contributions of a source
// partition's offsets First..Last, each pair's name gaining its value.
type rowDeltaEntry struct {
	Partition   int32
	First, Last int64
	Pairs       []Scored
}

// rowEventEntry is a per-event entry: every item gains Value.
type rowEventEntry struct {
	Partition int32
	Offset    int64
	Value     float64
	Items     []string
}

// rowErasureEntry is an erasure's entry: each pair's name loses its value.
type rowErasureEntry struct {
	Erasure string
	Pairs   []Scored
}

// appendPair appends one binary (name, value) pair.
func appendPair(dst []byte, name string, v float64) []byte {
	dst = binary.AppendUvarint(dst, uint64(len(name)))
	dst = append(dst, name...)
	return binary.LittleEndian.AppendUint64(dst, math.Float64bits(v))
}

func appendPairs(dst []byte, pairs []Scored) []byte {
	for _, p := range pairs {
		dst = appendPair(dst, p.ID, p.Score)
	}
	return dst
}

// nextPair decodes the first binary pair of body; false when it is
// malformed.
func nextPair(body string) (name string, v float64, rest string, ok bool) {
	n, k := binary.Uvarint([]byte(body[:min(len(body), binary.MaxVarintLen64)]))
	if k <= 0 || len(body)-k < 8 || n > uint64(len(body)-k-8) {
		return "", 0, body, false
	}
	end := k + int(n)
	return body[k:end], math.Float64frombits(binary.LittleEndian.Uint64([]byte(body[end : end+8]))), body[end+8:], true
}

// parsePairs appends the binary pairs of body to buf; on error it returns
// buf unchanged. The names are substrings of body.
func parsePairs(body string, buf []Scored) ([]Scored, bool) {
	n0 := len(buf)
	for len(body) > 0 {
		name, v, rest, ok := nextPair(body)
		if !ok {
			return buf[:n0], false
		}
		buf = append(buf, Scored{ID: name, Score: v})
		body = rest
	}
	return buf, true
}

// countPairs returns the number of pairs of a folded or delta entry
// without parsing it (0 for other kinds, or when they are malformed):
// room for what parsing it appends.
func countPairs(e string) int {
	var body string
	switch entryKind(e) {
	case rowFolded:
		body = e[1:]
	case rowDelta:
		_, body, _ = strings.Cut(e, "|")
	}
	n := 0
	for len(body) > 0 {
		var ok bool
		if _, _, body, ok = nextPair(body); !ok {
			return 0
		}
		n++
	}
	return n
}

// appendFolded appends the folded entry of pairs.
func appendFolded(dst []byte, pairs []Scored) []byte {
	return appendPairs(append(dst, rowFolded), pairs)
}

// parseFolded appends the pairs of a folded entry to buf; on error it
// returns buf unchanged.
func parseFolded(e string, buf []Scored) ([]Scored, error) {
	if entryKind(e) != rowFolded {
		return buf, entryError("folded row entry", e, "not an s entry")
	}
	out, ok := parsePairs(e[1:], buf)
	if !ok {
		return out, entryError("folded row entry", e, "malformed pairs")
	}
	return out, nil
}

// appendDelta appends the delta entry of d.
func appendDelta(dst []byte, d rowDeltaEntry) []byte {
	dst = append(dst, rowDelta)
	dst = strconv.AppendInt(dst, int64(d.Partition), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, d.First, 10)
	dst = append(dst, '-')
	dst = strconv.AppendInt(dst, d.Last, 10)
	dst = append(dst, '|')
	return appendPairs(dst, d.Pairs)
}

// parseDelta parses a delta entry, its pairs appended to buf (d.Pairs; buf
// unchanged on error).
func parseDelta(e string, buf []Scored) (d rowDeltaEntry, err error) {
	d.Pairs = buf
	if entryKind(e) != rowDelta {
		return d, entryError("delta row entry", e, "not a d entry")
	}
	head, body, ok := strings.Cut(e[1:], "|")
	if !ok {
		return d, entryError("delta row entry", e, "no header")
	}
	ps, offs, ok1 := strings.Cut(head, ":")
	fs, ls, ok2 := strings.Cut(offs, "-")
	p, ok3 := parseUint(ps, 31)
	first, ok4 := parseUint(fs, 63)
	last, ok5 := parseUint(ls, 63)
	if !ok1 || !ok2 || !ok3 || !ok4 || !ok5 {
		return d, entryError("delta row entry", e, "bad header")
	}
	d.Partition, d.First, d.Last = int32(p), first, last
	if d.Pairs, ok = parsePairs(body, buf); !ok {
		return d, entryError("delta row entry", e, "malformed pairs")
	}
	return d, nil
}

// appendEvent appends the per-event entry of c.
func appendEvent(dst []byte, c rowEventEntry) []byte {
	dst = append(dst, rowEvent)
	dst = strconv.AppendInt(dst, int64(c.Partition), 10)
	dst = append(dst, ':')
	dst = strconv.AppendInt(dst, c.Offset, 10)
	dst = append(dst, '|')
	dst = strconv.AppendFloat(dst, c.Value, 'g', 17, 64)
	dst = append(dst, '|')
	for i, it := range c.Items {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, it...)
	}
	return dst
}

// parseEvent parses a per-event entry, its items appended to buf. An item
// is never empty.
func parseEvent(e string, buf []string) (c rowEventEntry, err error) {
	c.Items = buf
	if entryKind(e) != rowEvent {
		return c, entryError("per-event row entry", e, "not a c entry")
	}
	head, rest, ok := strings.Cut(e[1:], "|")
	vs, items, ok2 := strings.Cut(rest, "|")
	if !ok || !ok2 {
		return c, entryError("per-event row entry", e, "fewer than 3 fields")
	}
	ps, os, ok3 := strings.Cut(head, ":")
	p, ok4 := parseUint(ps, 31)
	off, ok5 := parseUint(os, 63)
	v, verr := strconv.ParseFloat(vs, 64)
	if !ok3 || !ok4 || !ok5 || verr != nil {
		return c, entryError("per-event row entry", e, "bad header or value")
	}
	c.Partition, c.Offset, c.Value = int32(p), off, v
	for items != "" {
		var it string
		it, items, _ = strings.Cut(items, "\n")
		if it == "" {
			return rowEventEntry{Items: buf}, entryError("per-event row entry", e, "empty item")
		}
		c.Items = append(c.Items, it)
	}
	return c, nil
}

// appendErasure appends the erasure entry of x.
func appendErasure(dst []byte, x rowErasureEntry) []byte {
	dst = append(dst, rowErasure)
	dst = append(dst, x.Erasure...)
	dst = append(dst, '|')
	for i, p := range x.Pairs {
		if i > 0 {
			dst = append(dst, '\n')
		}
		dst = append(dst, p.ID...)
		dst = append(dst, '\t')
		dst = strconv.AppendFloat(dst, p.Score, 'g', 17, 64)
	}
	return dst
}

// parseErasure parses an erasure entry, its pairs appended to buf.
func parseErasure(e string, buf []Scored) (x rowErasureEntry, err error) {
	x.Pairs = buf
	if entryKind(e) != rowErasure {
		return x, entryError("erasure row entry", e, "not an e entry")
	}
	id, rest, ok := strings.Cut(e[1:], "|")
	if !ok {
		return x, entryError("erasure row entry", e, "no '|'")
	}
	x.Erasure = id
	for rest != "" {
		var line string
		line, rest, _ = strings.Cut(rest, "\n")
		k := strings.LastIndexByte(line, '\t')
		if k < 0 {
			return rowErasureEntry{Pairs: buf}, entryError("erasure row entry", e, "line without a tab")
		}
		amt, err := strconv.ParseFloat(line[k+1:], 64)
		if err != nil {
			return rowErasureEntry{Pairs: buf}, entryError("erasure row entry", e, "bad amount")
		}
		x.Pairs = append(x.Pairs, Scored{ID: line[:k], Score: amt})
	}
	return x, nil
}

// boughtSep separates an item from the suffix of its purchase name in a
// next-item row; ids cannot hold it (event.ValidateID rejects control
// characters).
const boughtSep = "\x00b"

// boughtName is the name under which a next-item row holds the purchase
// part of its transitions to item.
func boughtName(item string) string { return item + boughtSep }

// cutBought returns the item of a next-item row name, and whether the
// name is the item's purchase name.
func cutBought(name string) (item string, bought bool) {
	return strings.CutSuffix(name, boughtSep)
}
