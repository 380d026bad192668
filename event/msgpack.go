package event

import (
	"bytes"
	"encoding/binary"
	"errors"
	"io"
	"math"
	"strconv"
	"sync"
	"unicode/utf8"

	"github.com/vmihailenco/msgpack/v5"
	"github.com/vmihailenco/msgpack/v5/msgpcode"
)

// mpParser reads one message with msgpack/v5's streaming Decoder: the
// Decoder reads codes, lengths and numbers; every length it returns is
// checked against the bytes that remain before anything is read or
// allocated for it (str and bin payloads are sliced from the message, not
// read by the Decoder), and container nesting is limited to MaxDepth, so
// recursion depth is bounded too.
type mpParser struct {
	b []byte
	r bytes.Reader
	d *msgpack.Decoder
}

func (p *mpParser) truncated() *InvalidError {
	return invalid(ReasonMalformed, "msgpack: unexpected end of data after "+strconv.Itoa(len(p.b))+" bytes")
}

// fail turns an error of the msgpack Decoder into an *InvalidError.
func (p *mpParser) fail(err error) *InvalidError {
	if errors.Is(err, io.EOF) || errors.Is(err, io.ErrUnexpectedEOF) {
		return p.truncated()
	}
	return invalid(ReasonMalformed, err.Error())
}

func (p *mpParser) remaining() uint64 { return uint64(p.r.Len()) }

// peek returns the code of the next value without consuming it.
func (p *mpParser) peek() (byte, *InvalidError) {
	c, err := p.d.PeekCode()
	if err != nil {
		return 0, p.fail(err)
	}
	return c, nil
}

// take returns the next n bytes of the message and moves past them.
func (p *mpParser) take(n int) ([]byte, *InvalidError) {
	if n < 0 || uint64(n) > p.remaining() {
		return nil, invalid(ReasonMalformed, "msgpack: length prefix "+strconv.Itoa(n)+
			" exceeds the "+strconv.FormatUint(p.remaining(), 10)+" remaining bytes")
	}
	pos := len(p.b) - p.r.Len()
	if _, err := p.r.Seek(int64(n), io.SeekCurrent); err != nil {
		return nil, p.fail(err)
	}
	return p.b[pos : pos+n], nil
}

// bytes reads a str or bin value (the next code must be one).
func (p *mpParser) bytes() ([]byte, *InvalidError) {
	n, err := p.d.DecodeBytesLen()
	if err != nil {
		return nil, p.fail(err)
	}
	return p.take(n)
}

func isMapCode(c byte) bool {
	return msgpcode.IsFixedMap(c) || c == msgpcode.Map16 || c == msgpcode.Map32
}

func isArrayCode(c byte) bool {
	return msgpcode.IsFixedArray(c) || c == msgpcode.Array16 || c == msgpcode.Array32
}

func isBytesCode(c byte) bool { return msgpcode.IsString(c) || msgpcode.IsBin(c) }

// containerLen reads the header of the array or map whose code c is next
// and returns its element count (a map of n pairs counts 2n elements),
// rejecting a count that cannot fit in the remaining bytes (every element
// takes at least one byte). When depth > MaxDepth the container is rejected
// with ReasonTooDeep.
func (p *mpParser) containerLen(c byte, depth int) (int, *InvalidError) {
	var n int
	var err error
	isMap := isMapCode(c)
	if isMap {
		n, err = p.d.DecodeMapLen()
	} else {
		n, err = p.d.DecodeArrayLen()
	}
	if err != nil {
		return 0, p.fail(err)
	}
	if depth > MaxDepth {
		return 0, invalid(ReasonTooDeep, "msgpack: containers nested more than "+strconv.Itoa(MaxDepth)+" levels deep")
	}
	count := uint64(n)
	if isMap {
		count *= 2
	}
	if count > p.remaining() {
		what := "array"
		if isMap {
			what = "map"
		}
		return 0, invalid(ReasonMalformed, "msgpack: "+what+" header claims "+strconv.Itoa(n)+
			" entries but only "+strconv.FormatUint(p.remaining(), 10)+" bytes remain")
	}
	return int(count), nil
}

// skip consumes one value of any type. depth is the nesting level the value
// sits at (the top-level map is level 1), so a container here is rejected
// with ReasonTooDeep when depth > MaxDepth.
func (p *mpParser) skip(depth int) *InvalidError {
	c, err := p.peek()
	if err != nil {
		return err
	}
	switch {
	case isMapCode(c) || isArrayCode(c):
		n, err := p.containerLen(c, depth)
		if err != nil {
			return err
		}
		for ; n > 0; n-- {
			if err := p.skip(depth + 1); err != nil {
				return err
			}
		}
		return nil
	case isBytesCode(c):
		_, err := p.bytes()
		return err
	case msgpcode.IsExt(c):
		_, n, err := p.d.DecodeExtHeader()
		if err != nil {
			return p.fail(err)
		}
		_, ierr := p.take(n)
		return ierr
	case c == 0xc1: // the one code msgpack never uses
		return invalid(ReasonMalformed, "msgpack: reserved code 0xc1 at byte "+strconv.Itoa(len(p.b)-p.r.Len()))
	}
	// A fixed-size scalar: nil, bool, integer or float.
	if err := p.d.Skip(); err != nil {
		return p.fail(err)
	}
	return nil
}

// mpTypeName describes the msgpack value starting with code c.
func mpTypeName(c byte) string {
	switch {
	case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
		return "an integer"
	case isMapCode(c):
		return "a map"
	case isArrayCode(c):
		return "an array"
	case msgpcode.IsString(c):
		return "a string"
	case msgpcode.IsBin(c):
		return "binary"
	}
	switch c {
	case msgpcode.Nil:
		return "nil"
	case msgpcode.False, msgpcode.True:
		return "a boolean"
	case msgpcode.Float, msgpcode.Double:
		return "a float"
	}
	return "an extension value"
}

// mpParsers holds parsers with their Decoder set up to read their reader,
// so that a message costs no allocation for them.
var mpParsers = sync.Pool{New: func() any {
	p := &mpParser{}
	p.d = msgpack.NewDecoder(&p.r)
	return p
}}

// decodeMsgpack parses the msgpack message b (not empty) into f.
func decodeMsgpack(b []byte, f *fields) *InvalidError {
	p := mpParsers.Get().(*mpParser)
	p.b = b
	p.r.Reset(b)
	err := p.parse(f)
	p.b = nil
	p.r.Reset(nil)
	mpParsers.Put(p)
	return err
}

func (p *mpParser) parse(f *fields) *InvalidError {
	c := p.b[0]
	if !isMapCode(c) {
		if c == 0xc1 {
			return invalid(ReasonMalformed, "msgpack: reserved code 0xc1 at byte 0")
		}
		return invalid(ReasonNotObject, "top-level msgpack value is "+mpTypeName(c)+", not a map")
	}
	n, err := p.containerLen(c, 1)
	if err != nil {
		return err
	}
	for n /= 2; n > 0; n-- {
		// Key: a str (or bin) naming a known field; anything else, including
		// non-string keys, is an unknown field and is skipped with its value.
		c, err := p.peek()
		if err != nil {
			return err
		}
		var k uint16
		if isBytesCode(c) {
			key, err := p.bytes()
			if err != nil {
				return err
			}
			k = fieldOf(key)
		} else if err := p.skip(2); err != nil {
			return err
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
	if p.r.Len() != 0 {
		return invalid(ReasonTrailingData, strconv.Itoa(p.r.Len())+" bytes after the msgpack map")
	}
	return nil
}

// field decodes the value of known field k.
func (p *mpParser) field(f *fields, k uint16) *InvalidError {
	c, ierr := p.peek()
	if ierr != nil {
		return ierr
	}
	var err error
	switch {
	case isList(k) && isArrayCode(c):
		return p.list(f, k, c)
	case isBytesCode(c):
		s, err := p.bytes()
		if err == nil {
			f.setBytes(k, s)
		}
		return err
	case c == msgpcode.Nil: // same as absent
		err = p.d.DecodeNil()
	case c == msgpcode.Uint64:
		var v uint64
		if v, err = p.d.DecodeUint64(); err == nil {
			f.setUint(k, v)
		}
	case msgpcode.IsFixedNum(c) || (c >= msgpcode.Uint8 && c <= msgpcode.Int64):
		var v int64
		if v, err = p.d.DecodeInt64(); err == nil {
			f.setInt(k, v)
		}
	case c == msgpcode.Float:
		var v float32
		if v, err = p.d.DecodeFloat32(); err == nil {
			f.setFloat(k, float64(v))
		}
	case c == msgpcode.Double:
		var v float64
		if v, err = p.d.DecodeFloat64(); err == nil {
			f.setFloat(k, v)
		}
	default:
		// bool, container, ext or reserved: never valid for a known field.
		// Skip it (bounded) so structural errors still win.
		if err := p.skip(2); err != nil {
			return err
		}
		f.wrongType(k, mpTypeName(c))
	}
	if err != nil {
		return p.fail(err)
	}
	return nil
}

// list decodes the array of strings of field k, whose code c is next. An
// element that is not a str or bin is skipped (bounded) and reported as a
// wrong field type.
func (p *mpParser) list(f *fields, k uint16, c byte) *InvalidError {
	n, err := p.containerLen(c, 2)
	if err != nil {
		return err
	}
	f.listed(k)
	for ; n > 0; n-- {
		c, err := p.peek()
		if err != nil {
			return err
		}
		if isBytesCode(c) {
			s, err := p.bytes()
			if err != nil {
				return err
			}
			f.appendString(k, string(s))
			continue
		}
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
