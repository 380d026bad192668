package event

import (
	"math"
	"strconv"
	"time"
)

// Decoder decodes and validates wire messages. The zero value is ready to
// use; a Decoder is a plain value and is safe for concurrent use as long as
// Now is.
type Decoder struct {
	MaxBytes  int              // longest accepted message; DefaultMaxBytes when <= 0
	MaxIDLen  int              // longest user_id/item_id/session_id in bytes; DefaultMaxIDLen when <= 0
	MaxFuture time.Duration    // how far ts may be ahead of Now(); DefaultMaxFuture when <= 0
	Now       func() time.Time // clock for the ts_in_future check; time.Now when nil
}

func (d Decoder) withDefaults() Decoder {
	if d.MaxBytes <= 0 {
		d.MaxBytes = DefaultMaxBytes
	}
	if d.MaxIDLen <= 0 {
		d.MaxIDLen = DefaultMaxIDLen
	}
	if d.MaxFuture <= 0 {
		d.MaxFuture = DefaultMaxFuture
	}
	if d.Now == nil {
		d.Now = time.Now
	}
	return d
}

// Decode is Decoder{}.Decode: it decodes b with every limit at its default.
func Decode(b []byte, kafkaTS time.Time) (Event, error) {
	return Decoder{}.Decode(b, kafkaTS)
}

// Decode parses and validates one message. The format is auto-detected: JSON
// when the first non-whitespace byte is '{', msgpack otherwise (so any other
// JSON value, such as an array, is reported as ReasonNotObject). When the
// message has no ts, or ts is 0 or null, kafkaTS (in milliseconds) is used;
// it is then validated like a message ts, so a zero kafkaTS fails with
// ReasonTSTooOld. On failure the error is always an *InvalidError and the
// returned Event is the zero Event. The returned strings do not alias b.
func (d Decoder) Decode(b []byte, kafkaTS time.Time) (Event, error) {
	d = d.withDefaults()
	if len(b) > d.MaxBytes {
		return Event{}, invalidf(ReasonTooLarge, "%d bytes, limit %d", len(b), d.MaxBytes)
	}
	i := 0
	for i < len(b) && isSpace(b[i]) {
		i++
	}
	if i == len(b) {
		return Event{}, invalid(ReasonEmpty, "no data")
	}
	var f fields
	var err *InvalidError
	switch c := b[i]; {
	case c == '{':
		p := jsonParser{b: b, pos: i}
		err = p.parse(&f)
	case c == '[' || c == '"' || c == '-' || (c >= '0' && c <= '9') || c == 't' || c == 'f' || c == 'n':
		// A JSON value other than an object. Its first byte is also a
		// msgpack positive fixint, so this is not_object either way.
		return Event{}, invalid(ReasonNotObject, "top-level JSON value is not an object")
	default:
		p := mpParser{b: b}
		err = p.parse(&f)
	}
	if err == nil {
		err = f.err
	}
	if err != nil {
		return Event{}, err
	}
	fromKafka := f.ev.TS == 0
	if fromKafka {
		f.ev.TS = kafkaTS.UnixMilli()
	}
	if err := f.ev.validate(d, fromKafka); err != nil {
		return Event{}, err
	}
	return f.ev, nil
}

func isSpace(c byte) bool {
	return c == ' ' || c == '\t' || c == '\n' || c == '\r'
}

// Known fields, as bits of fields.seen.
const (
	fUser uint8 = 1 << iota
	fItem
	fType
	fTS
	fValue
	fSession
)

func fieldOf(key []byte) uint8 {
	switch string(key) { // does not allocate
	case "user_id":
		return fUser
	case "item_id":
		return fItem
	case "type":
		return fType
	case "ts":
		return fTS
	case "value":
		return fValue
	case "session_id":
		return fSession
	}
	return 0
}

func fieldName(f uint8) string {
	switch f {
	case fUser:
		return "user_id"
	case fItem:
		return "item_id"
	case fType:
		return "type"
	case fTS:
		return "ts"
	case fValue:
		return "value"
	case fSession:
		return "session_id"
	}
	return "?"
}

// fields accumulates the event while a message is parsed. Field-level
// problems (duplicates, wrong value types, unknown type names) are recorded
// in err, first one wins, and parsing goes on so that structural problems
// anywhere in the message take precedence over them.
type fields struct {
	ev   Event
	seen uint8
	err  *InvalidError
}

func (f *fields) fail(r Reason, detail string) {
	if f.err == nil {
		f.err = invalid(r, detail)
	}
}

// begin marks field k as seen and reports whether it was new.
func (f *fields) begin(k uint8) bool {
	if f.seen&k != 0 {
		f.fail(ReasonDuplicateField, fieldName(k)+" appears more than once")
		return false
	}
	f.seen |= k
	return true
}

func (f *fields) wrongType(k uint8, got string) {
	if f.err != nil {
		return
	}
	want := "a string"
	if k == fTS {
		want = "an integer"
	} else if k == fValue {
		want = "a number"
	}
	f.fail(ReasonWrongType, fieldName(k)+" must be "+want+", got "+got)
}

// setString stores a string-valued field (user_id, item_id, session_id, type).
func (f *fields) setString(k uint8, s []byte) {
	switch k {
	case fUser:
		f.ev.UserID = string(s)
	case fItem:
		f.ev.ItemID = string(s)
	case fSession:
		f.ev.SessionID = string(s)
	case fType:
		if len(s) == 0 {
			return // reported as missing_type
		}
		t, ok := typeFromName(string(s))
		if !ok {
			f.fail(ReasonUnknownType, "type "+quoteTrunc(string(s))+" is not one of browse, click, add_to_cart, purchase")
			return
		}
		f.ev.Type = t
	default:
		f.wrongType(k, "a string")
	}
}

func (f *fields) setInt(k uint8, v int64) {
	switch k {
	case fTS:
		f.ev.TS = v
	case fValue:
		f.ev.Value = float64(v)
	default:
		f.wrongType(k, "a number")
	}
}

func (f *fields) setUint(k uint8, v uint64) {
	if v > math.MaxInt64 {
		switch k {
		case fTS:
			f.ev.TS = math.MaxInt64 // far future, rejected by validation
		case fValue:
			f.ev.Value = float64(v)
		default:
			f.wrongType(k, "a number")
		}
		return
	}
	f.setInt(k, int64(v))
}

func (f *fields) setFloat(k uint8, v float64) {
	switch k {
	case fTS:
		switch {
		case math.IsNaN(v) || v != math.Trunc(v):
			f.wrongType(k, "a non-integral number")
		case v >= 0x1p63:
			f.ev.TS = math.MaxInt64 // rejected by validation
		case v < -0x1p63:
			f.ev.TS = math.MinInt64 // rejected by validation
		default:
			f.ev.TS = int64(v)
		}
	case fValue:
		f.ev.Value = v
	default:
		f.wrongType(k, "a number")
	}
}

// setNumber stores a JSON number given as its (grammatically valid) text.
func (f *fields) setNumber(k uint8, num []byte, integer bool) {
	if k != fTS && k != fValue {
		f.wrongType(k, "a number")
		return
	}
	if integer {
		if v, ok := parseSmallInt(num); ok {
			f.setInt(k, v)
			return
		}
		if k == fTS {
			if v, err := strconv.ParseInt(string(num), 10, 64); err == nil {
				f.setInt(k, v)
			} else if num[0] == '-' { // out of range
				f.ev.TS = math.MinInt64
			} else {
				f.ev.TS = math.MaxInt64
			}
			return
		}
	}
	// A grammatically valid JSON number always parses; out-of-range values
	// come back as ±Inf (or 0 on underflow) together with ErrRange.
	v, _ := strconv.ParseFloat(string(num), 64)
	f.setFloat(k, v)
}

// parseSmallInt parses an optional '-' followed by at most 18 digits.
func parseSmallInt(b []byte) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for _, c := range b {
		if c < '0' || c > '9' {
			return 0, false
		}
		v = v*10 + int64(c-'0')
	}
	if neg {
		v = -v
	}
	return v, true
}
