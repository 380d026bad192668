package event

import (
	"encoding/binary"
	"math"
	"strconv"
	"unicode/utf8"
)

// mpParser is a bounds-checked, non-allocating msgpack reader over a byte
// slice. Nothing is ever allocated from a length prefix: every length is
// checked against the bytes that remain before it is used, and container
// nesting is limited to MaxDepth, so recursion depth is bounded too.
type mpParser struct {
	b   []byte
	pos int
}

func (p *mpParser) truncated() *InvalidError {
	return invalid(ReasonMalformed, "msgpack: unexpected end of data after "+strconv.Itoa(len(p.b))+" bytes")
}

func (p *mpParser) remaining() uint64 { return uint64(len(p.b) - p.pos) }

// readUint reads an n-byte (1, 2, 4 or 8) big-endian unsigned integer.
func (p *mpParser) readUint(n int) (uint64, *InvalidError) {
	if len(p.b)-p.pos < n {
		return 0, p.truncated()
	}
	b := p.b[p.pos : p.pos+n]
	p.pos += n
	switch n {
	case 1:
		return uint64(b[0]), nil
	case 2:
		return uint64(binary.BigEndian.Uint16(b)), nil
	case 4:
		return uint64(binary.BigEndian.Uint32(b)), nil
	default:
		return binary.BigEndian.Uint64(b), nil
	}
}

// take returns the next n bytes.
func (p *mpParser) take(n uint64) ([]byte, *InvalidError) {
	if n > p.remaining() {
		return nil, invalid(ReasonMalformed, "msgpack: length prefix "+strconv.FormatUint(n, 10)+
			" exceeds the "+strconv.FormatUint(p.remaining(), 10)+" remaining bytes")
	}
	s := p.b[p.pos : p.pos+int(n)]
	p.pos += int(n)
	return s, nil
}

// strBytes reads the payload of a str or bin value whose code c has already
// been consumed. ok is false when c is not a str/bin code.
func (p *mpParser) strBytes(c byte) (s []byte, ok bool, err *InvalidError) {
	var n uint64
	switch {
	case c >= 0xa0 && c <= 0xbf:
		n = uint64(c & 0x1f)
	case c == 0xd9 || c == 0xc4:
		n, err = p.readUint(1)
	case c == 0xda || c == 0xc5:
		n, err = p.readUint(2)
	case c == 0xdb || c == 0xc6:
		n, err = p.readUint(4)
	default:
		return nil, false, nil
	}
	if err != nil {
		return nil, true, err
	}
	s, err = p.take(n)
	return s, true, err
}

// containerLen reads the element count of an array or map whose code c has
// already been consumed; a map of n pairs counts 2n elements. ok is false
// when c is not an array or map code.
func (p *mpParser) containerLen(c byte) (n uint64, isMap, ok bool, err *InvalidError) {
	switch {
	case c >= 0x80 && c <= 0x8f:
		return uint64(c&0x0f) * 2, true, true, nil
	case c >= 0x90 && c <= 0x9f:
		return uint64(c & 0x0f), false, true, nil
	case c == 0xdc || c == 0xde:
		n, err = p.readUint(2)
	case c == 0xdd || c == 0xdf:
		n, err = p.readUint(4)
	default:
		return 0, false, false, nil
	}
	isMap = c == 0xde || c == 0xdf
	if isMap {
		n *= 2
	}
	return n, isMap, true, err
}

// checkCount rejects an element count that cannot fit in the remaining
// bytes (every element takes at least one byte).
func (p *mpParser) checkCount(n uint64, isMap bool) *InvalidError {
	if n <= p.remaining() {
		return nil
	}
	what := "array"
	if isMap {
		what = "map"
		n /= 2
	}
	return invalid(ReasonMalformed, "msgpack: "+what+" header claims "+strconv.FormatUint(n, 10)+
		" entries but only "+strconv.FormatUint(p.remaining(), 10)+" bytes remain")
}

// fixedSize is the payload size of the fixed-size scalar code c (after the
// code byte), or -1 if c is not one.
func fixedSize(c byte) int {
	switch c {
	case 0xc0, 0xc2, 0xc3: // nil, false, true
		return 0
	case 0xcc, 0xd0: // uint8, int8
		return 1
	case 0xcd, 0xd1, 0xd4: // uint16, int16, fixext1
		return 2
	case 0xd5: // fixext2
		return 3
	case 0xca, 0xce, 0xd2: // float32, uint32, int32
		return 4
	case 0xd6: // fixext4
		return 5
	case 0xcb, 0xcf, 0xd3: // float64, uint64, int64
		return 8
	case 0xd7: // fixext8
		return 9
	case 0xd8: // fixext16
		return 17
	}
	return -1
}

// skip consumes one value of any type. depth is the nesting level the value
// sits at (the top-level map is level 1), so a container here is rejected
// with ReasonTooDeep when depth > MaxDepth.
func (p *mpParser) skip(depth int) *InvalidError {
	if p.pos >= len(p.b) {
		return p.truncated()
	}
	c := p.b[p.pos]
	p.pos++
	if c <= 0x7f || c >= 0xe0 { // fixint
		return nil
	}
	if _, ok, err := p.strBytes(c); ok {
		return err
	}
	if n := fixedSize(c); n >= 0 {
		_, err := p.take(uint64(n))
		return err
	}
	if n, isMap, ok, err := p.containerLen(c); ok {
		if err != nil {
			return err
		}
		if depth > MaxDepth {
			return invalid(ReasonTooDeep, "msgpack: containers nested more than "+strconv.Itoa(MaxDepth)+" levels deep")
		}
		if err := p.checkCount(n, isMap); err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	}
	var n uint64
	var err *InvalidError
	switch c {
	case 0xc7: // ext8
		n, err = p.readUint(1)
	case 0xc8: // ext16
		n, err = p.readUint(2)
	case 0xc9: // ext32
		n, err = p.readUint(4)
	default: // 0xc1, the only code left
		return invalid(ReasonMalformed, "msgpack: reserved code 0xc1 at byte "+strconv.Itoa(p.pos-1))
	}
	if err != nil {
		return err
	}
	_, err = p.take(n + 1) // type byte + data
	return err
}

// mpTypeName describes the msgpack value starting with code c.
func mpTypeName(c byte) string {
	switch {
	case c <= 0x7f || c >= 0xe0 || (c >= 0xcc && c <= 0xd3):
		return "an integer"
	case c <= 0x8f || c == 0xde || c == 0xdf:
		return "a map"
	case c <= 0x9f || c == 0xdc || c == 0xdd:
		return "an array"
	case c <= 0xbf || (c >= 0xd9 && c <= 0xdb):
		return "a string"
	}
	switch c {
	case 0xc0:
		return "nil"
	case 0xc2, 0xc3:
		return "a boolean"
	case 0xc4, 0xc5, 0xc6:
		return "binary"
	case 0xca, 0xcb:
		return "a float"
	}
	return "an extension value"
}

func (p *mpParser) parse(f *fields) *InvalidError {
	c := p.b[0]
	p.pos = 1
	n, isMap, ok, err := p.containerLen(c)
	if !ok || !isMap {
		if c == 0xc1 {
			return invalid(ReasonMalformed, "msgpack: reserved code 0xc1 at byte 0")
		}
		return invalid(ReasonNotObject, "top-level msgpack value is "+mpTypeName(c)+", not a map")
	}
	if err != nil {
		return err
	}
	if err := p.checkCount(n, true); err != nil {
		return err
	}
	for n /= 2; n > 0; n-- {
		if p.pos >= len(p.b) {
			return p.truncated()
		}
		// Key: a str (or bin) naming a known field; anything else, including
		// non-string keys, is an unknown field and is skipped with its value.
		var k uint16
		c := p.b[p.pos]
		p.pos++
		if c&0xe0 == 0xa0 { // fixstr fast path
			l := int(c & 0x1f)
			if l > len(p.b)-p.pos {
				_, err := p.take(uint64(l))
				return err
			}
			k = fieldOf(p.b[p.pos : p.pos+l])
			p.pos += l
		} else if key, ok, err := p.strBytes(c); err != nil {
			return err
		} else if ok {
			k = fieldOf(key)
		} else {
			p.pos--
			if err := p.skip(2); err != nil {
				return err
			}
		}
		if k == 0 || !f.begin(k) {
			if err := p.skip(2); err != nil {
				return err
			}
			continue
		}
		if err := p.field(f, k); err != nil {
			return err
		}
	}
	if p.pos != len(p.b) {
		return invalid(ReasonTrailingData, strconv.Itoa(len(p.b)-p.pos)+" bytes after the msgpack map")
	}
	return nil
}

// field decodes the value of known field k.
func (p *mpParser) field(f *fields, k uint16) *InvalidError {
	if p.pos >= len(p.b) {
		return p.truncated()
	}
	c := p.b[p.pos]
	p.pos++
	if isList(k) && (c&0xf0 == 0x90 || c == 0xdc || c == 0xdd) {
		return p.list(f, k, c)
	}
	switch {
	case c <= 0x7f:
		f.setInt(k, int64(c))
		return nil
	case c >= 0xe0:
		f.setInt(k, int64(int8(c)))
		return nil
	}
	s, ok, err := p.strBytes(c)
	if ok {
		if err == nil {
			f.setString(k, s)
		}
		return err
	}
	var v uint64
	switch c {
	case 0xc0: // nil: same as absent
		return nil
	case 0xcc:
		v, err = p.readUint(1)
	case 0xcd:
		v, err = p.readUint(2)
	case 0xce:
		v, err = p.readUint(4)
	case 0xcf:
		v, err = p.readUint(8)
	case 0xd0:
		v, err = p.readUint(1)
		v = uint64(int8(v))
	case 0xd1:
		v, err = p.readUint(2)
		v = uint64(int16(v))
	case 0xd2:
		v, err = p.readUint(4)
		v = uint64(int32(v))
	case 0xd3:
		v, err = p.readUint(8)
	case 0xca:
		v, err = p.readUint(4)
		if err == nil {
			f.setFloat(k, float64(math.Float32frombits(uint32(v))))
		}
		return err
	case 0xcb:
		v, err = p.readUint(8)
		if err == nil {
			f.setFloat(k, math.Float64frombits(v))
		}
		return err
	default:
		// bool, container, ext or reserved: never valid for a known field.
		// Skip it (bounded) so structural errors still win.
		p.pos--
		if err := p.skip(2); err != nil {
			return err
		}
		f.wrongType(k, mpTypeName(c))
		return nil
	}
	if err != nil {
		return err
	}
	if c <= 0xcf {
		f.setUint(k, v)
	} else {
		f.setInt(k, int64(v))
	}
	return nil
}

// list decodes the array of strings of field k, whose code c has been
// consumed. An element that is not a str or bin is skipped (bounded) and
// reported as a wrong field type.
func (p *mpParser) list(f *fields, k uint16, c byte) *InvalidError {
	n, _, _, err := p.containerLen(c)
	if err != nil {
		return err
	}
	if err := p.checkCount(n, false); err != nil {
		return err
	}
	f.listed(k)
	for ; n > 0; n-- {
		if p.pos >= len(p.b) {
			return p.truncated()
		}
		c := p.b[p.pos]
		p.pos++
		s, ok, err := p.strBytes(c)
		if err != nil {
			return err
		}
		if ok {
			f.appendString(k, s)
			continue
		}
		p.pos--
		if err := p.skip(3); err != nil {
			return err
		}
		f.wrongType(k, "an array holding "+mpTypeName(c))
	}
	return nil
}

// Field keys with their msgpack fixstr headers.
const (
	mpKeyUser    = "\xa7user_id"
	mpKeyItem    = "\xa7item_id"
	mpKeyType    = "\xa4type"
	mpKeyTS      = "\xa2ts"
	mpKeyValue   = "\xa5value"
	mpKeySession = "\xaasession_id"
	mpKeyItems   = "\xa5items"
	mpKeySources = "\xa7sources"
	mpKeyVariant = "\xa7variant"
	mpKeyGenAt   = "\xacgenerated_at"
)

// Encode returns e as a msgpack map with the wire field names. user_id,
// item_id and type are always written; ts, value and session_id only when
// non-zero/non-empty. Integers use the smallest msgpack encoding, value is
// always a float64. Encode applies none of the Decoder's limits or content
// rules (so it can produce messages that Decode rejects, e.g. for tests); it
// only fails, with an *InvalidError, for events that have no faithful
// encoding: Type not in Types, a non-finite Value, or an ID that is not
// valid UTF-8.
func Encode(e Event) ([]byte, error) {
	if err := e.encodable(); err != nil {
		return nil, err
	}
	name := e.Type.String()
	size := 1 + len(mpKeyUser) + 5 + len(e.UserID) + len(mpKeyItem) + 5 + len(e.ItemID) + len(mpKeyType) + 1 + len(name)
	n := 3
	m := e.Shown
	if e.Type == Impression {
		size += 64 + len(m.Variant)
		for _, s := range m.Items {
			size += 5 + len(s)
		}
		for _, s := range m.Sources {
			size += 5 + len(s)
		}
		if len(m.Sources) > 0 {
			n++
		}
		if m.Variant != "" {
			n++
		}
		if m.GeneratedAt != 0 {
			n++
		}
	}
	if e.TS != 0 {
		n++
		size += len(mpKeyTS) + 9
	}
	if e.Value != 0 {
		n++
		size += len(mpKeyValue) + 9
	}
	if e.SessionID != "" {
		n++
		size += len(mpKeySession) + 5 + len(e.SessionID)
	}
	b := make([]byte, 0, size)
	b = append(b, 0x80|byte(n))
	b = append(b, mpKeyUser...)
	b = mpAppendStr(b, e.UserID)
	if e.Type != Impression {
		b = append(b, mpKeyItem...)
		b = mpAppendStr(b, e.ItemID)
	} else {
		b = mpAppendList(append(b, mpKeyItems...), m.Items)
		if len(m.Sources) > 0 {
			b = mpAppendList(append(b, mpKeySources...), m.Sources)
		}
		if m.Variant != "" {
			b = mpAppendStr(append(b, mpKeyVariant...), m.Variant)
		}
		if m.GeneratedAt != 0 {
			b = mpAppendInt(append(b, mpKeyGenAt...), m.GeneratedAt)
		}
	}
	b = append(b, mpKeyType...)
	b = mpAppendStr(b, name)
	if e.TS != 0 {
		b = append(b, mpKeyTS...)
		b = mpAppendInt(b, e.TS)
	}
	if e.Value != 0 {
		b = append(b, mpKeyValue...)
		b = append(b, 0xcb)
		b = binary.BigEndian.AppendUint64(b, math.Float64bits(e.Value))
	}
	if e.SessionID != "" {
		b = append(b, mpKeySession...)
		b = mpAppendStr(b, e.SessionID)
	}
	return b, nil
}

// encodable reports why e cannot be encoded faithfully, if it cannot.
func (e *Event) encodable() *InvalidError {
	switch {
	case e.Type == 0:
		return invalid(ReasonMissingType, "type is not set")
	case e.Type > Impression:
		return invalid(ReasonUnknownType, "type "+strconv.Itoa(int(e.Type))+" is not a known event type")
	case e.Type == Impression && e.Shown == nil:
		return invalid(ReasonMissingItems, "an impression needs Shown set")
	case math.IsNaN(e.Value) || math.IsInf(e.Value, 0):
		return invalid(ReasonBadValue, "value is not finite")
	case !utf8.ValidString(e.UserID):
		return invalid(ReasonBadUserID, "user_id is not valid UTF-8")
	case !utf8.ValidString(e.ItemID):
		return invalid(ReasonBadItemID, "item_id is not valid UTF-8")
	case !utf8.ValidString(e.SessionID):
		return invalid(ReasonBadSessionID, "session_id is not valid UTF-8")
	case uint64(len(e.UserID)) > math.MaxUint32, uint64(len(e.ItemID)) > math.MaxUint32, uint64(len(e.SessionID)) > math.MaxUint32:
		return invalid(ReasonIDTooLong, "an ID is longer than 4 GiB")
	}
	if e.Type == Impression {
		for _, l := range [][]string{e.Shown.Items, e.Shown.Sources, {e.Shown.Variant}} {
			for _, s := range l {
				if !utf8.ValidString(s) || uint64(len(s)) > math.MaxUint32 {
					return invalid(ReasonBadItemID, "an impression string is not valid UTF-8 or longer than 4 GiB")
				}
			}
		}
	}
	return nil
}

func mpAppendList(b []byte, l []string) []byte {
	if len(l) < 16 {
		b = append(b, 0x90|byte(len(l)))
	} else if len(l) <= math.MaxUint16 {
		b = binary.BigEndian.AppendUint16(append(b, 0xdc), uint16(len(l)))
	} else {
		b = binary.BigEndian.AppendUint32(append(b, 0xdd), uint32(len(l)))
	}
	for _, s := range l {
		b = mpAppendStr(b, s)
	}
	return b
}

func mpAppendStr(b []byte, s string) []byte {
	switch n := len(s); {
	case n < 32:
		b = append(b, 0xa0|byte(n))
	case n <= math.MaxUint8:
		b = append(b, 0xd9, byte(n))
	case n <= math.MaxUint16:
		b = append(b, 0xda)
		b = binary.BigEndian.AppendUint16(b, uint16(n))
	default:
		b = append(b, 0xdb)
		b = binary.BigEndian.AppendUint32(b, uint32(n))
	}
	return append(b, s...)
}

func mpAppendInt(b []byte, v int64) []byte {
	switch {
	case v >= 0 && v <= 0x7f:
		return append(b, byte(v))
	case v >= 0 && v <= math.MaxUint8:
		return append(b, 0xcc, byte(v))
	case v >= 0 && v <= math.MaxUint16:
		return binary.BigEndian.AppendUint16(append(b, 0xcd), uint16(v))
	case v >= 0 && v <= math.MaxUint32:
		return binary.BigEndian.AppendUint32(append(b, 0xce), uint32(v))
	case v >= 0:
		return binary.BigEndian.AppendUint64(append(b, 0xcf), uint64(v))
	case v >= -32:
		return append(b, byte(v))
	case v >= math.MinInt8:
		return append(b, 0xd0, byte(v))
	case v >= math.MinInt16:
		return binary.BigEndian.AppendUint16(append(b, 0xd1), uint16(v))
	case v >= math.MinInt32:
		return binary.BigEndian.AppendUint32(append(b, 0xd2), uint32(v))
	}
	return binary.BigEndian.AppendUint64(append(b, 0xd3), uint64(v))
}
