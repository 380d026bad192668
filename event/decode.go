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
	MaxItems  int              // most items of one impression; DefaultMaxItems when <= 0
	// Variants are the names an impression's variant may take (the
	// configured A/B variants; empty but not nil: none may be named); an
	// impression without a variant (a trending list) is always accepted.
	// nil does not check variants.
	Variants []string
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
	if d.MaxItems <= 0 {
		d.MaxItems = DefaultMaxItems
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
		err = decodeMsgpack(b, &f)
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
	if f.ev.Type == Impression {
		if len(f.sources) == 0 {
			f.sources = nil // "sources":[] is the same as no sources
		}
		f.imp.Items, f.imp.Sources = f.items, f.sources
		f.ev.Shown = &f.imp
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
	fUser uint16 = 1 << iota
	fItem
	fType
	fTS
	fValue
	fSession
	fItems       // impressions
	fSources     // impressions
	fVariant     // impressions
	fGeneratedAt // impressions
)

func fieldOf(key []byte) uint16 {
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
	case "items":
		return fItems
	case "sources":
		return fSources
	case "variant":
		return fVariant
	case "generated_at":
		return fGeneratedAt
	}
	return 0
}

func fieldName(f uint16) string {
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
	case fItems:
		return "items"
	case fSources:
		return "sources"
	case fVariant:
		return "variant"
	case fGeneratedAt:
		return "generated_at"
	}
	return "?"
}

// fields accumulates the event while a message is parsed. Field-level
// problems (duplicates, wrong value types, unknown type names) are recorded
// in err, first one wins, and parsing goes on so that structural problems
// anywhere in the message take precedence over them.
type fields struct {
	ev   Event
	seen uint16
	err  *InvalidError
	// An impression's fields, read whatever the type (it may come after
	// them) and kept only for an impression.
	imp     Shown
	items   []string
	sources []string
}

// isList reports whether k is a field whose value is an array of strings.
func isList(k uint16) bool { return k == fItems || k == fSources }

// appendString adds one element of the array field k.
func (f *fields) appendString(k uint16, s string) {
	if k == fItems {
		f.items = append(f.items, s)
	} else {
		f.sources = append(f.sources, s)
	}
}

// listed marks the array field k as present, even when empty.
func (f *fields) listed(k uint16) {
	if k == fItems && f.items == nil {
		f.items = []string{}
	} else if k == fSources && f.sources == nil {
		f.sources = []string{}
	}
}

func (f *fields) fail(r Reason, detail string) {
	if f.err == nil {
		f.err = invalid(r, detail)
	}
}

// begin marks field k as seen and reports whether it was new.
func (f *fields) begin(k uint16) bool {
	if f.seen&k != 0 {
		f.fail(ReasonDuplicateField, fieldName(k)+" appears more than once")
		return false
	}
	f.seen |= k
	return true
}

func (f *fields) wrongType(k uint16, got string) {
	if f.err != nil {
		return
	}
	want := "a string"
	switch {
	case k == fTS || k == fGeneratedAt:
		want = "an integer"
	case k == fValue:
		want = "a number"
	case isList(k):
		want = "an array of strings"
	}
	f.fail(ReasonWrongType, fieldName(k)+" must be "+want+", got "+got)
}

// setString stores a string-valued field (user_id, item_id, session_id, type).
func (f *fields) setString(k uint16, s string) {
	switch k {
	case fVariant:
		f.imp.Variant = s
	case fUser:
		f.ev.UserID = s
	case fItem:
		f.ev.ItemID = s
	case fSession:
		f.ev.SessionID = s
	case fType:
		if len(s) == 0 {
			return // reported as missing_type
		}
		t, ok := typeFromName(s)
		if !ok {
			f.fail(ReasonUnknownType, "type "+quoteTrunc(s)+" "+typeNames)
			return
		}
		f.ev.Type = t
	default:
		f.wrongType(k, "a string")
	}
}

// setBytes is setString for a value sliced from the message; a type name
// is matched without allocating.
func (f *fields) setBytes(k uint16, s []byte) {
	if k == fType {
		if t, ok := typeFromName(string(s)); ok {
			f.ev.Type = t
			return
		}
	}
	f.setString(k, string(s))
}

func (f *fields) setInt(k uint16, v int64) {
	switch k {
	case fTS:
		f.ev.TS = v
	case fGeneratedAt:
		f.imp.GeneratedAt = v
	case fValue:
		f.ev.Value = float64(v)
	default:
		f.wrongType(k, "a number")
	}
}

func (f *fields) setUint(k uint16, v uint64) {
	if v > math.MaxInt64 {
		switch k {
		case fTS:
			f.ev.TS = math.MaxInt64 // far future, rejected by validation
		case fGeneratedAt:
			f.imp.GeneratedAt = math.MaxInt64 // rejected by validation
		case fValue:
			f.ev.Value = float64(v)
		default:
			f.wrongType(k, "a number")
		}
		return
	}
	f.setInt(k, int64(v))
}

func (f *fields) setFloat(k uint16, v float64) {
	switch k {
	case fTS, fGeneratedAt:
		dst := &f.ev.TS
		if k == fGeneratedAt {
			dst = &f.imp.GeneratedAt
		}
		switch {
		case math.IsNaN(v) || v != math.Trunc(v):
			f.wrongType(k, "a non-integral number")
		case v >= 0x1p63:
			*dst = math.MaxInt64 // rejected by validation
		case v < -0x1p63:
			*dst = math.MinInt64 // rejected by validation
		default:
			*dst = int64(v)
		}
	case fValue:
		f.ev.Value = v
	default:
		f.wrongType(k, "a number")
	}
}

// setNumber stores a JSON number given as its (grammatically valid) text;
// integer is true when it has neither a fraction nor an exponent.
func (f *fields) setNumber(k uint16, num string, integer bool) {
	if k != fTS && k != fValue && k != fGeneratedAt {
		f.wrongType(k, "a number")
		return
	}
	if integer {
		if v, ok := parseSmallInt(num); ok {
			f.setInt(k, v)
			return
		}
		if k == fTS || k == fGeneratedAt {
			if v, err := strconv.ParseInt(num, 10, 64); err == nil {
				f.setInt(k, v)
			} else if num[0] == '-' { // out of range
				f.setInt(k, math.MinInt64)
			} else {
				f.setInt(k, math.MaxInt64)
			}
			return
		}
	}
	// A grammatically valid JSON number always parses; out-of-range values
	// come back as ±Inf (or 0 on underflow) together with ErrRange.
	v, _ := strconv.ParseFloat(num, 64)
	f.setFloat(k, v)
}

// parseSmallInt parses an optional '-' followed by at most 18 digits.
func parseSmallInt(b string) (int64, bool) {
	neg := false
	if len(b) > 0 && b[0] == '-' {
		neg = true
		b = b[1:]
	}
	if len(b) == 0 || len(b) > 18 {
		return 0, false
	}
	var v int64
	for i := 0; i < len(b); i++ {
		c := b[i]
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
