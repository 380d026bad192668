package event_test

import (
	"bytes"
	"encoding/json"
	"math"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/event"
)

func TestRoundTrip(t *testing.T) {
	var events []event.Event
	for _, typ := range event.Types {
		full := baseEvent()
		full.Type = typ
		minimal := event.Event{UserID: "u", ItemID: "i", Type: typ, TS: testTS}
		unicode := event.Event{UserID: "ユーザー/é", ItemID: `it"em\42`, Type: typ, TS: event.MinTS, Value: -3.25, SessionID: "s🎉"}
		long := event.Event{
			UserID: strings.Repeat("u", 128), ItemID: strings.Repeat("i", 31), Type: typ,
			TS: testNow.Add(time.Hour).UnixMilli(), Value: math.MaxFloat64, SessionID: strings.Repeat("s", 32),
		}
		events = append(events, full, minimal, unicode, long)
	}
	for _, v := range []float64{1, -1, 0.1, 1e-7, 1e21, 123456789.125, math.SmallestNonzeroFloat64, -math.MaxFloat64} {
		e := baseEvent()
		e.Value = v
		events = append(events, e)
	}
	d := testDecoder()
	for _, e := range events {
		mp, err := event.Encode(e)
		if err != nil {
			t.Fatalf("Encode(%+v): %v", e, err)
		}
		js, err := event.EncodeJSON(e)
		if err != nil {
			t.Fatalf("EncodeJSON(%+v): %v", e, err)
		}
		if !json.Valid(js) {
			t.Errorf("EncodeJSON produced invalid JSON: %s", js)
		}
		for name, b := range map[string][]byte{"msgpack": mp, "json": js} {
			got, err := d.Decode(b, testKafkaTS)
			if err != nil {
				t.Errorf("%s: Decode(%q): %v", name, b, err)
				continue
			}
			if got != e {
				t.Errorf("%s: round trip\n got %+v\nwant %+v", name, got, e)
			}
		}
	}
}

// TestEncodeWireFormat checks Encode and EncodeJSON against the reference
// msgpack decoder and encoding/json.
func TestEncodeWireFormat(t *testing.T) {
	e := baseEvent()
	e.Type = event.AddToCart
	mp, err := event.Encode(e)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]any
	if err := msgpack.Unmarshal(mp, &m); err != nil {
		t.Fatalf("reference decoder: %v", err)
	}
	want := map[string]any{
		"user_id": "user-1", "item_id": "item-42", "type": "add_to_cart",
		"ts": uint64(testTS), "value": 19.99, "session_id": "sess-9",
	}
	if len(m) != len(want) {
		t.Errorf("msgpack map %v, want %v", m, want)
	}
	for k, v := range want {
		if m[k] != v {
			t.Errorf("msgpack %s = %#v, want %#v", k, m[k], v)
		}
	}

	js, err := event.EncodeJSON(e)
	if err != nil {
		t.Fatal(err)
	}
	wantJSON := `{"user_id":"user-1","item_id":"item-42","type":"add_to_cart","ts":` +
		strconv.FormatInt(testTS, 10) + `,"value":19.99,"session_id":"sess-9"}`
	if string(js) != wantJSON {
		t.Errorf("EncodeJSON = %s\nwant %s", js, wantJSON)
	}

	// Optional fields are omitted when zero.
	min := event.Event{UserID: "u", ItemID: "i", Type: event.Browse}
	js, _ = event.EncodeJSON(min)
	if string(js) != `{"user_id":"u","item_id":"i","type":"browse"}` {
		t.Errorf("EncodeJSON(minimal) = %s", js)
	}
	mp, _ = event.Encode(min)
	m = nil
	if err := msgpack.Unmarshal(mp, &m); err != nil || len(m) != 3 {
		t.Errorf("Encode(minimal) = %v (%v)", m, err)
	}

	// Escaping.
	js, _ = event.EncodeJSON(event.Event{UserID: "a\"b\\c\x01\n\u2028", ItemID: "i", Type: event.Browse})
	var back struct {
		UserID string `json:"user_id"`
	}
	if err := json.Unmarshal(js, &back); err != nil || back.UserID != "a\"b\\c\x01\n\u2028" {
		t.Errorf("EncodeJSON escaping: %s -> %q, %v", js, back.UserID, err)
	}
}

func TestEncodeErrors(t *testing.T) {
	tests := []struct {
		name string
		e    event.Event
		want event.Reason
	}{
		{"no type", event.Event{UserID: "u", ItemID: "i"}, event.ReasonMissingType},
		{"bad type", event.Event{UserID: "u", ItemID: "i", Type: 6}, event.ReasonUnknownType},
		{"impression without Shown", event.Event{UserID: "u", Type: event.Impression}, event.ReasonMissingItems},
		{"nan", event.Event{UserID: "u", ItemID: "i", Type: event.Click, Value: math.NaN()}, event.ReasonBadValue},
		{"inf", event.Event{UserID: "u", ItemID: "i", Type: event.Click, Value: math.Inf(-1)}, event.ReasonBadValue},
		{"utf8 user", event.Event{UserID: "\xff", ItemID: "i", Type: event.Click}, event.ReasonBadUserID},
		{"utf8 item", event.Event{UserID: "u", ItemID: "\xff", Type: event.Click}, event.ReasonBadItemID},
		{"utf8 session", event.Event{UserID: "u", ItemID: "i", Type: event.Click, SessionID: "\xff"}, event.ReasonBadSessionID},
	}
	for _, tt := range tests {
		if _, err := event.Encode(tt.e); event.ReasonOf(err) != tt.want {
			t.Errorf("%s: Encode error %v, want %q", tt.name, err, tt.want)
		}
		if _, err := event.EncodeJSON(tt.e); event.ReasonOf(err) != tt.want {
			t.Errorf("%s: EncodeJSON error %v, want %q", tt.name, err, tt.want)
		}
	}
	// Encode does not apply the Decoder's rules: it can write an event that
	// Decode rejects.
	b, err := event.Encode(event.Event{UserID: "a b", ItemID: "i", Type: event.Click, TS: 1})
	if err != nil {
		t.Fatal(err)
	}
	if _, err := testDecoder().Decode(b, testKafkaTS); event.ReasonOf(err) != event.ReasonBadUserID {
		t.Errorf("decode of encoded bad event: %v", err)
	}
}

func nested(open, close string, n int, inner string) string {
	return strings.Repeat(open, n) + inner + strings.Repeat(close, n)
}

const validJSON = `{"user_id":"user-1","item_id":"item-42","type":"click","ts":1748779195000}`

func TestDecodeInvalid(t *testing.T) {
	valid := baseMP(t)
	// jsonWith builds a JSON event from the valid one with field k replaced
	// by the raw JSON text v (or removed when v is "").
	jsonWith := func(k, v string) []byte {
		m := map[string]string{
			"user_id": `"user-1"`, "item_id": `"item-42"`, "type": `"click"`,
			"ts": strconv.FormatInt(testTS, 10),
		}
		m[k] = v
		var b strings.Builder
		b.WriteString("{")
		for _, key := range []string{"user_id", "item_id", "type", "ts", "value", "session_id", "x"} {
			if val, ok := m[key]; ok && val != "" {
				if b.Len() > 1 {
					b.WriteString(",")
				}
				b.WriteString(strconv.Quote(key) + ":" + val)
			}
		}
		b.WriteString("}")
		return []byte(b.String())
	}
	mpWith := func(k string, v mpw) []byte { return mpMap(t, with(basePairs(), k, v)...) }
	id129 := strings.Repeat("a", 129)
	huge := bytes.Repeat([]byte(" "), 10<<20)
	copy(huge, validJSON)
	deepMP := func(prefix []byte) []byte {
		b := append([]byte(nil), prefix...)
		b = append(b, bytes.Repeat([]byte{0x91}, 10000)...)
		return append(b, 0x01)
	}

	tests := []struct {
		name string
		in   []byte
		want event.Reason
	}{
		// Size and emptiness come first.
		{"nil", nil, event.ReasonEmpty},
		{"empty", []byte{}, event.ReasonEmpty},
		{"whitespace only", []byte(" \t\r\n  \n"), event.ReasonEmpty},
		{"10 MB payload", huge, event.ReasonTooLarge},
		{"64 KiB + 1", append(bytes.Repeat([]byte{' '}, 64<<10), valid...)[:64<<10+1], event.ReasonTooLarge},

		// msgpack structure.
		{"truncated msgpack", valid[:len(valid)/2], event.ReasonMalformed},
		{"truncated msgpack header", []byte{0xde, 0x00}, event.ReasonMalformed},
		{"msgpack reserved 0xc1 top", []byte{0xc1}, event.ReasonMalformed},
		{"msgpack reserved 0xc1 in value", mpWith("x", mpRaw(0xc1)), event.ReasonMalformed},
		{"msgpack map32 claims 2^31 entries", []byte{0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'a', 0x01, 0xa1, 'b'}, event.ReasonMalformed},
		{"msgpack map16 claims more than remain", []byte{0xde, 0xff, 0xff, 0xa1, 'a', 0x01}, event.ReasonMalformed},
		{"msgpack str32 length 4G", mpWith("user_id", mpRaw(0xdb, 0xff, 0xff, 0xff, 0xff, 'a')), event.ReasonMalformed},
		{"msgpack bin32 length 2G", mpWith("x", mpRaw(0xc6, 0x80, 0, 0, 0)), event.ReasonMalformed},
		{"msgpack array32 count 4G", mpWith("x", mpRaw(0xdd, 0xff, 0xff, 0xff, 0xff, 0x01)), event.ReasonMalformed},
		{"msgpack ext32 length 4G", mpWith("x", mpRaw(0xc9, 0xff, 0xff, 0xff, 0xff, 0x01)), event.ReasonMalformed},
		{"msgpack 10000 nested fixarrays", deepMP(nil), event.ReasonNotObject},
		{"msgpack 10000 nested fixarrays in unknown field", deepMP([]byte("\x81\xa1x")), event.ReasonTooDeep},
		{"msgpack 10000 nested fixarrays in user_id", deepMP([]byte("\x81\xa7user_id")), event.ReasonTooDeep},
		{"msgpack depth 5 in unknown field", mpWith("x", mpArr(mpArr(mpArr(mpArr(mpFixInt(1)))))), event.ReasonTooDeep},
		{"msgpack depth 5 via map key", mpMap(t, kv{"x", mpMapW(kv{"a", mpArr(mpArr(mpArr(mpNil())))})}), event.ReasonTooDeep},
		{"msgpack top-level array", []byte{0x93, 0xa1, 'a', 0xa1, 'b', 0x01}, event.ReasonNotObject},
		{"msgpack top-level string", []byte("\xa5hello"), event.ReasonNotObject},
		{"msgpack top-level nil", []byte{0xc0}, event.ReasonNotObject},
		{"msgpack top-level int", []byte{0xcd, 0x01, 0x02}, event.ReasonNotObject},
		{"msgpack top-level ext", []byte{0xd4, 0x01, 0x80}, event.ReasonNotObject},
		{"msgpack trailing byte", append(append([]byte(nil), valid...), 0x00), event.ReasonTrailingData},
		{"msgpack trailing newline", append(append([]byte(nil), valid...), '\n'), event.ReasonTrailingData},
		{"msgpack two maps", append(append([]byte(nil), valid...), valid...), event.ReasonTrailingData},

		// msgpack field types.
		{"msgpack number user_id", mpWith("user_id", mpI64(42)), event.ReasonWrongType},
		{"msgpack float item_id", mpWith("item_id", mpF64(4.2)), event.ReasonWrongType},
		{"msgpack bool item_id", mpWith("item_id", mpBool(true)), event.ReasonWrongType},
		{"msgpack array user_id", mpWith("user_id", mpArr(mpStr("u"))), event.ReasonWrongType},
		{"msgpack map type", mpWith("type", mpMapW(kv{"a", mpNil()})), event.ReasonWrongType},
		{"msgpack ext session_id", mpWith("session_id", mpRaw(0xd4, 0x01, 0x02)), event.ReasonWrongType},
		{"msgpack string ts", mpWith("ts", mpStr(strconv.FormatInt(testTS, 10))), event.ReasonWrongType},
		{"msgpack bool ts", mpWith("ts", mpBool(false)), event.ReasonWrongType},
		{"msgpack fractional float ts", mpWith("ts", mpF64(float64(testTS)+0.5)), event.ReasonWrongType},
		{"msgpack NaN ts", mpWith("ts", mpF64(math.NaN())), event.ReasonWrongType},
		{"msgpack string value", mpWith("value", mpStr("9.99")), event.ReasonWrongType},
		{"msgpack number type", mpWith("type", mpFixInt(2)), event.ReasonWrongType},

		// Missing and unknown fields.
		{"msgpack missing user_id", mpMap(t, without(basePairs(), "user_id")...), event.ReasonMissingUser},
		{"msgpack missing item_id", mpMap(t, without(basePairs(), "item_id")...), event.ReasonMissingItem},
		{"msgpack missing type", mpMap(t, without(basePairs(), "type")...), event.ReasonMissingType},
		{"msgpack empty map", []byte{0x80}, event.ReasonMissingUser},
		{"msgpack nil user_id", mpWith("user_id", mpNil()), event.ReasonMissingUser},
		{"msgpack empty item_id", mpWith("item_id", mpStr("")), event.ReasonMissingItem},
		{"msgpack empty type", mpWith("type", mpStr("")), event.ReasonMissingType},
		{"msgpack unknown type", mpWith("type", mpStr("view")), event.ReasonUnknownType},
		{"msgpack type wrong case", mpWith("type", mpStr("Click")), event.ReasonUnknownType},
		{"msgpack field name case", mpMap(t, with(without(basePairs(), "user_id"), "User_ID", mpStr("u"))...), event.ReasonMissingUser},
		{"msgpack duplicate field", mpMap(t, append(basePairs(), kv{"user_id", mpStr("user-2")})...), event.ReasonDuplicateField},
		{"msgpack duplicate nil field", mpMap(t, append(basePairs(), kv{"value", mpNil()}, kv{"value", mpF64(1)})...), event.ReasonDuplicateField},

		// IDs.
		{"user_id 129 bytes", mpWith("user_id", mpStr(id129)), event.ReasonIDTooLong},
		{"item_id 129 bytes", mpWith("item_id", mpStr(id129)), event.ReasonIDTooLong},
		{"session_id 129 bytes", mpWith("session_id", mpStr(id129)), event.ReasonIDTooLong},
		{"user_id control char", mpWith("user_id", mpStr("u\x01")), event.ReasonBadUserID},
		{"user_id NUL", mpWith("user_id", mpStr("u\x00x")), event.ReasonBadUserID},
		{"user_id tab", mpWith("user_id", mpStr("u\t1")), event.ReasonBadUserID},
		{"user_id space", mpWith("user_id", mpStr("u 1")), event.ReasonBadUserID},
		{"user_id newline", mpWith("user_id", mpStr("u1\n")), event.ReasonBadUserID},
		{"user_id open brace", mpWith("user_id", mpStr("u{1")), event.ReasonBadUserID},
		{"user_id close brace", mpWith("user_id", mpStr("u}1")), event.ReasonBadUserID},
		{"user_id invalid UTF-8", mpWith("user_id", mpStr("u\xff1")), event.ReasonBadUserID},
		{"user_id bin invalid UTF-8", mpWith("user_id", mpBin([]byte{'u', 0xc3})), event.ReasonBadUserID},
		{"user_id NBSP", mpWith("user_id", mpStr("u\u00a01")), event.ReasonBadUserID},
		{"item_id tab", mpWith("item_id", mpStr("i\t")), event.ReasonBadItemID},
		{"item_id brace", mpWith("item_id", mpStr("{i}")), event.ReasonBadItemID},
		{"item_id invalid UTF-8", mpWith("item_id", mpStr("\xc0\xaf")), event.ReasonBadItemID},
		{"session_id space", mpWith("session_id", mpStr("s 1")), event.ReasonBadSessionID},
		{"session_id DEL", mpWith("session_id", mpStr("s\x7f")), event.ReasonBadSessionID},

		// Timestamps and values.
		{"ts before 2000", mpWith("ts", mpI64(event.MinTS-1)), event.ReasonTSTooOld},
		{"ts 1999 as uint32 seconds", mpWith("ts", mpU32(946684799)), event.ReasonTSTooOld},
		{"ts negative int8", mpWith("ts", mpI8(-1)), event.ReasonTSTooOld},
		{"ts min int64", mpWith("ts", mpI64(math.MinInt64)), event.ReasonTSTooOld},
		{"ts 2 days in future", mpWith("ts", mpI64(testNow.Add(time2d).UnixMilli())), event.ReasonTSInFuture},
		{"ts max uint64", mpWith("ts", mpU64(math.MaxUint64)), event.ReasonTSInFuture},
		{"ts huge float", mpWith("ts", mpF64(1e300)), event.ReasonTSInFuture},
		{"ts -Inf float", mpWith("ts", mpF64(math.Inf(-1))), event.ReasonTSTooOld},
		{"ts in nanoseconds", mpWith("ts", mpI64(testNow.UnixNano())), event.ReasonTSInFuture},
		{"NaN value", mpWith("value", mpF64(math.NaN())), event.ReasonBadValue},
		{"+Inf float32 value", mpWith("value", mpF32(float32(math.Inf(1)))), event.ReasonBadValue},
		{"-Inf value", mpWith("value", mpF64(math.Inf(-1))), event.ReasonBadValue},

		// JSON structure.
		{"json trailing junk", []byte(validJSON + " x"), event.ReasonTrailingData},
		{"json two objects", []byte(validJSON + validJSON), event.ReasonTrailingData},
		{"json trailing NUL", []byte(validJSON + "\x00"), event.ReasonTrailingData},
		{"json top-level array", []byte(`[` + validJSON + `]`), event.ReasonNotObject},
		{"json top-level string", []byte(`"user-1"`), event.ReasonNotObject},
		{"json top-level number", []byte(` 12`), event.ReasonNotObject},
		{"json top-level null", []byte(`null`), event.ReasonNotObject},
		{"json 10000 nested arrays", []byte(nested("[", "]", 10000, "1")), event.ReasonNotObject},
		{"json 10000 nested arrays in unknown field", []byte(`{"x":` + nested("[", "]", 10000, "1") + `}`), event.ReasonTooDeep},
		{"json 10000 unclosed arrays in field", []byte(`{"x":` + strings.Repeat("[", 10000)), event.ReasonTooDeep},
		{"json 10000 nested objects in item_id", []byte(`{"item_id":` + nested(`{"a":`, "}", 10000, "1") + `}`), event.ReasonTooDeep},
		{"json depth 5", jsonWith("x", `[[[[1]]]]`), event.ReasonTooDeep},
		{"json depth 5 objects", jsonWith("x", `{"a":{"b":{"c":{}}}}`), event.ReasonTooDeep},
		{"json truncated", []byte(`{"user_id":"user-1","item_id":"i`), event.ReasonMalformed},
		{"json truncated after key", []byte(`{"user_id"`), event.ReasonMalformed},
		{"json only brace", []byte(`{`), event.ReasonMalformed},
		{"json trailing comma", []byte(`{"user_id":"u",}`), event.ReasonMalformed},
		{"json single quotes", []byte(`{'user_id':'u'}`), event.ReasonMalformed},
		{"json unquoted key", []byte(`{user_id:"u"}`), event.ReasonMalformed},
		{"json missing colon", []byte(`{"user_id" "u"}`), event.ReasonMalformed},
		{"json leading zero", jsonWith("x", `01`), event.ReasonMalformed},
		{"json bare minus", jsonWith("x", `-`), event.ReasonMalformed},
		{"json fraction without digits", jsonWith("ts", `1.`), event.ReasonMalformed},
		{"json exponent without digits", jsonWith("value", `1e+`), event.ReasonMalformed},
		{"json NaN literal", jsonWith("value", `NaN`), event.ReasonMalformed},
		{"json bad literal", jsonWith("x", `tru`), event.ReasonMalformed},
		{"json raw control char in string", jsonWith("user_id", "\"u\x01\""), event.ReasonMalformed},
		{"json bad escape", jsonWith("user_id", `"u\x41"`), event.ReasonMalformed},
		{"json short unicode escape", jsonWith("user_id", `"u\u12"`), event.ReasonMalformed},
		{"json array trailing comma", jsonWith("x", `[1,]`), event.ReasonMalformed},

		// JSON fields.
		{"json number user_id", jsonWith("user_id", `42`), event.ReasonWrongType},
		{"json string ts", jsonWith("ts", `"1748779195000"`), event.ReasonWrongType},
		{"json fractional ts", jsonWith("ts", `1748779195000.5`), event.ReasonWrongType},
		{"json bool ts", jsonWith("ts", `true`), event.ReasonWrongType},
		{"json object value", jsonWith("value", `{}`), event.ReasonWrongType},
		{"json array type", jsonWith("type", `["click"]`), event.ReasonWrongType},
		{"json missing user_id", jsonWith("user_id", ""), event.ReasonMissingUser},
		{"json missing item_id", jsonWith("item_id", ""), event.ReasonMissingItem},
		{"json missing type", jsonWith("type", ""), event.ReasonMissingType},
		{"json null type", jsonWith("type", "null"), event.ReasonMissingType},
		{"json empty object", []byte(`{}`), event.ReasonMissingUser},
		{"json unknown type", jsonWith("type", `"like"`), event.ReasonUnknownType},
		{"json duplicate field", []byte(`{"user_id":"a","item_id":"i","type":"click","type":"browse"}`), event.ReasonDuplicateField},
		{"json duplicate via escape", []byte(`{"user_id":"a","item_id":"i","type":"click","user\u005fid":"b"}`), event.ReasonDuplicateField},
		{"json escaped control in user_id", jsonWith("user_id", `"u\u0001"`), event.ReasonBadUserID},
		{"json escaped tab in user_id", jsonWith("user_id", `"u\t1"`), event.ReasonBadUserID},
		{"json escaped brace in item_id", jsonWith("item_id", `"\u007b"`), event.ReasonBadItemID},
		{"json lone surrogate in user_id", jsonWith("user_id", `"u\ud800"`), event.ReasonBadUserID},
		{"json reversed surrogates in user_id", jsonWith("user_id", `"u\udc00\ud800"`), event.ReasonBadUserID},
		{"json raw invalid UTF-8 in user_id", jsonWith("user_id", "\"u\xff\""), event.ReasonBadUserID},
		{"json raw invalid UTF-8 in session_id", jsonWith("session_id", "\"s\xe2\x28\xa1\""), event.ReasonBadSessionID},
		{"json user_id 129 bytes", jsonWith("user_id", strconv.Quote(id129)), event.ReasonIDTooLong},
		{"json ts before 2000", jsonWith("ts", `946684799999`), event.ReasonTSTooOld},
		{"json ts negative", jsonWith("ts", `-5`), event.ReasonTSTooOld},
		{"json ts 2 days in future", jsonWith("ts", strconv.FormatInt(testNow.Add(time2d).UnixMilli(), 10)), event.ReasonTSInFuture},
		{"json ts beyond int64", jsonWith("ts", `99999999999999999999999`), event.ReasonTSInFuture},
		{"json ts below int64", jsonWith("ts", `-99999999999999999999999`), event.ReasonTSTooOld},
		{"json ts huge exponent", jsonWith("ts", `1e400`), event.ReasonTSInFuture},
		{"json value overflow", jsonWith("value", `1e400`), event.ReasonBadValue},
		{"json value -overflow", jsonWith("value", `-1e400`), event.ReasonBadValue},

		// Structural problems win over field problems, wherever they are.
		{"json wrong type then junk", []byte(`{"user_id":1,"item_id":"i","type":"click"} x`), event.ReasonTrailingData},
		{"json duplicate then truncated", []byte(`{"type":"click","type":"click"`), event.ReasonMalformed},
		{"json unknown type then too deep", []byte(`{"type":"x","y":[[[[[]]]]]}`), event.ReasonTooDeep},
		{"msgpack wrong type then truncated", mpWith("user_id", mpI8(1))[:10], event.ReasonMalformed},
		{"msgpack duplicate then trailing", append(mpMap(t, append(basePairs(), kv{"type", mpStr("x")})...), 0x01), event.ReasonTrailingData},
		// The first field-level problem wins.
		{"json wrong type before unknown type", []byte(`{"user_id":1,"type":"x"}`), event.ReasonWrongType},
		{"json unknown type before missing item", []byte(`{"user_id":"u","type":"x"}`), event.ReasonUnknownType},
	}
	if len(tests) < 25 {
		t.Fatalf("only %d cases", len(tests))
	}
	d := testDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			ev, err := d.Decode(tt.in, testKafkaTS)
			if err == nil {
				t.Fatalf("Decode succeeded: %+v", ev)
			}
			if ev != (event.Event{}) {
				t.Errorf("Decode returned non-zero event %+v with error", ev)
			}
			var ie *event.InvalidError
			if !asInvalid(err, &ie) {
				t.Fatalf("error %T %v is not *InvalidError", err, err)
			}
			if ie.Reason != tt.want {
				t.Errorf("reason %q (%v), want %q", ie.Reason, err, tt.want)
			}
			if len(ie.Detail) > 200 {
				t.Errorf("detail is %d bytes long", len(ie.Detail))
			}
		})
	}
}

// TestDecodeTruncations checks that every proper prefix of valid messages
// is rejected as malformed (or empty), never accepted and never a panic.
func TestDecodeTruncations(t *testing.T) {
	e := baseEvent()
	mp, _ := event.Encode(e)
	js, _ := event.EncodeJSON(e)
	d := testDecoder()
	for name, b := range map[string][]byte{"msgpack": mp, "json": js} {
		for i := 1; i < len(b); i++ {
			_, err := d.Decode(b[:i], testKafkaTS)
			if r := event.ReasonOf(err); r != event.ReasonMalformed {
				t.Errorf("%s prefix %d %q: reason %q (%v), want malformed", name, i, b[:i], r, err)
			}
		}
	}
}

func TestDecodeValidVariants(t *testing.T) {
	want := event.Event{UserID: "user-1", ItemID: "item-42", Type: event.Click, TS: testTS}
	kafka := want
	kafka.TS = testKafkaTS.UnixMilli()
	withValue := func(e event.Event, v float64) event.Event { e.Value = v; return e }
	withSession := func(e event.Event, s string) event.Event { e.SessionID = s; return e }
	withTS := func(e event.Event, ts int64) event.Event { e.TS = ts; return e }
	depth4 := mpArr(mpArr(mpArr(mpFixInt(1))))
	f32 := float32(testTS)

	tests := []struct {
		name string
		in   []byte
		want event.Event
	}{
		{"msgpack base", baseMP(t), want},
		{"msgpack ts uint64", mpMap(t, with(basePairs(), "ts", mpU64(uint64(testTS)))...), want},
		{"msgpack ts float64", mpMap(t, with(basePairs(), "ts", mpF64(float64(testTS)))...), want},
		{"msgpack ts float32", mpMap(t, with(basePairs(), "ts", mpF32(f32))...), withTS(want, int64(f32))},
		{"msgpack ts fixint 0", mpMap(t, with(basePairs(), "ts", mpFixInt(0))...), kafka},
		{"msgpack ts int8 0", mpMap(t, with(basePairs(), "ts", mpI8(0))...), kafka},
		{"msgpack ts int16 0", mpMap(t, with(basePairs(), "ts", mpI16(0))...), kafka},
		{"msgpack ts int32 0", mpMap(t, with(basePairs(), "ts", mpI32(0))...), kafka},
		{"msgpack ts int64 0", mpMap(t, with(basePairs(), "ts", mpI64(0))...), kafka},
		{"msgpack ts uint8 0", mpMap(t, with(basePairs(), "ts", mpU8(0))...), kafka},
		{"msgpack ts uint16 0", mpMap(t, with(basePairs(), "ts", mpU16(0))...), kafka},
		{"msgpack ts uint32 0", mpMap(t, with(basePairs(), "ts", mpU32(0))...), kafka},
		{"msgpack ts uint64 0", mpMap(t, with(basePairs(), "ts", mpU64(0))...), kafka},
		{"msgpack ts float 0", mpMap(t, with(basePairs(), "ts", mpF64(0))...), kafka},
		{"msgpack ts nil", mpMap(t, with(basePairs(), "ts", mpNil())...), kafka},
		{"msgpack value int8", baseMP(t, kv{"value", mpI8(-3)}), withValue(want, -3)},
		{"msgpack value uint16", baseMP(t, kv{"value", mpU16(500)}), withValue(want, 500)},
		{"msgpack value uint64 max", baseMP(t, kv{"value", mpU64(math.MaxUint64)}), withValue(want, math.MaxUint64)},
		{"msgpack value float32", baseMP(t, kv{"value", mpF32(2.5)}), withValue(want, 2.5)},
		{"msgpack value nil", baseMP(t, kv{"value", mpNil()}), want},
		{"msgpack session", baseMP(t, kv{"session_id", mpStr("s-1")}), withSession(want, "s-1")},
		{"msgpack session nil", baseMP(t, kv{"session_id", mpNil()}), want},
		{"msgpack session empty", baseMP(t, kv{"session_id", mpStr("")}), want},
		{"msgpack bin ids", mpMap(t, with(with(basePairs(), "user_id", mpBin([]byte("user-1"))), "type", mpBin([]byte("click")))...), want},
		{"msgpack str8/str16 ids", mpMap(t, with(basePairs(), "user_id", mpRawS("\xda\x00\x06user-1"))...), want},
		{"msgpack bin key", appendPair(t, mpMap(t, without(basePairs(), "item_id")...), "\xc4\x07item_id\xa7item-42"), want},
		{"msgpack unknown scalars", baseMP(t, kv{"a", mpStr("x")}, kv{"b", mpF64(1)}, kv{"c", mpBool(true)}, kv{"d", mpNil()}, kv{"e", mpRaw(0xd6, 0xff, 1, 2, 3, 4)}, kv{"f", mpRaw(0xc7, 0x02, 0x05, 1, 2)}), want},
		{"msgpack unknown nested depth 4", baseMP(t, kv{"x", depth4}, kv{"y", mpMapW(kv{"a", mpArr(mpMapW())})}), want},
		{"msgpack unknown duplicates", baseMP(t, kv{"x", mpFixInt(1)}, kv{"x", mpFixInt(2)}), want},
		{"msgpack non-string keys", nonStringKeys(t), want},
		{"json base", []byte(validJSON), withTS(want, 1748779195000)},
		{"json whitespace", []byte(" \n\t{ \"user_id\" : \"user-1\" ,\r\n\"item_id\":\"item-42\", \"type\":\"click\"  ,\"ts\" : " + strconv.FormatInt(testTS, 10) + " } \n"), want},
		{"json ts exponent", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","ts":` + strconv.FormatFloat(float64(testTS), 'e', -1, 64) + `}`), want},
		{"json ts integral fraction", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","ts":` + strconv.FormatInt(testTS, 10) + `.000}`), want},
		{"json ts zero", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","ts":0}`), kafka},
		{"json ts -0.0", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","ts":-0.0}`), kafka},
		{"json ts null", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","ts":null}`), kafka},
		{"json ts absent", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click"}`), kafka},
		{"json value int", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","value":-7}`), withValue(kafka, -7)},
		{"json value big int", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","value":123456789012345678901234}`), withValue(kafka, 123456789012345678901234)},
		{"json value exp", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","value":1.5E-3}`), withValue(kafka, 1.5e-3)},
		{"json value underflow", []byte(`{"user_id":"user-1","item_id":"item-42","type":"click","value":1e-400}`), kafka},
		{"json escapes", []byte(`{"user\u005fid":"us\u00e9r\/1","item_id":"\ud83c\udf89","type":"cl\u0069ck"}`), event.Event{UserID: "usér/1", ItemID: "🎉", Type: event.Click, TS: kafka.TS}},
		{"json unknown fields", []byte(`{"user_id":"user-1","x":[1,{"a":[]}],"x2":{"a":{"b":[]}},"item_id":"item-42","y":"\ud800","z":null,"type":"click","\u0000":true,"w":-1.5e-3}`), kafka},
		{"json unknown duplicates", []byte(`{"user_id":"user-1","x":1,"x":2,"item_id":"item-42","type":"click"}`), kafka},
		{"json User_ID is unknown", []byte(`{"User_ID":"x","user_id":"user-1","item_id":"item-42","type":"click"}`), kafka},
	}
	d := testDecoder()
	for _, tt := range tests {
		t.Run(tt.name, func(t *testing.T) {
			got, err := d.Decode(tt.in, testKafkaTS)
			if err != nil {
				t.Fatalf("Decode(%q): %v", tt.in, err)
			}
			if got != tt.want {
				t.Errorf("got  %+v\nwant %+v", got, tt.want)
			}
		})
	}
}

// appendPair appends one raw key/value pair to a msgpack fixmap.
func appendPair(t *testing.T, b []byte, pair string) []byte {
	if b[0] < 0x80 || b[0] >= 0x8f {
		t.Fatalf("unexpected header %x", b[0])
	}
	b[0]++
	return append(b, pair...)
}

// nonStringKeys returns the base event plus two pairs whose keys are an
// integer and an array; such pairs are unknown fields and are skipped.
func nonStringKeys(t *testing.T) []byte {
	b := appendPair(t, mpMap(t, basePairs()...), "\x07\xc3")
	return appendPair(t, b, "\x91\x01\xa1v")
}

func TestKafkaTimestampDefault(t *testing.T) {
	d := testDecoder()
	kafkaTS := testNow.Add(-90 * time.Second)
	msgs := map[string][]byte{
		"msgpack absent": mpMap(t, without(basePairs(), "ts")...),
		"msgpack zero":   mpMap(t, with(basePairs(), "ts", mpFixInt(0))...),
		"json absent":    []byte(`{"user_id":"u","item_id":"i","type":"purchase"}`),
		"json zero":      []byte(`{"user_id":"u","item_id":"i","type":"purchase","ts":0}`),
	}
	for name, b := range msgs {
		ev, err := d.Decode(b, kafkaTS)
		if err != nil {
			t.Errorf("%s: %v", name, err)
			continue
		}
		if ev.TS != kafkaTS.UnixMilli() {
			t.Errorf("%s: TS = %d, want Kafka timestamp %d", name, ev.TS, kafkaTS.UnixMilli())
		}
		// A zero Kafka timestamp with no message ts is rejected.
		if _, err := d.Decode(b, time.Time{}); event.ReasonOf(err) != event.ReasonTSTooOld {
			t.Errorf("%s with zero Kafka timestamp: %v, want ts_too_old", name, err)
		}
		// The Kafka timestamp is validated like a message ts.
		if _, err := d.Decode(b, testNow.Add(time2d)); event.ReasonOf(err) != event.ReasonTSInFuture {
			t.Errorf("%s with future Kafka timestamp: %v, want ts_in_future", name, err)
		}
	}
	ev, err := d.Decode(baseMP(t), kafkaTS)
	if err != nil || ev.TS != testTS {
		t.Errorf("message ts should win: %d, %v", ev.TS, err)
	}
}

func TestDecoderLimits(t *testing.T) {
	b := baseMP(t, kv{"session_id", mpStr("0123456789")})
	if _, err := (event.Decoder{Now: fixedNow, MaxBytes: len(b)}).Decode(b, testKafkaTS); err != nil {
		t.Errorf("MaxBytes = len: %v", err)
	}
	if _, err := (event.Decoder{Now: fixedNow, MaxBytes: len(b) - 1}).Decode(b, testKafkaTS); event.ReasonOf(err) != event.ReasonTooLarge {
		t.Errorf("MaxBytes = len-1: %v", err)
	}
	if _, err := (event.Decoder{Now: fixedNow, MaxIDLen: 10}).Decode(b, testKafkaTS); err != nil {
		t.Errorf("MaxIDLen 10: %v", err)
	}
	if _, err := (event.Decoder{Now: fixedNow, MaxIDLen: 9}).Decode(b, testKafkaTS); event.ReasonOf(err) != event.ReasonIDTooLong {
		t.Errorf("MaxIDLen 9: %v", err)
	}
	fut := mpMap(t, with(basePairs(), "ts", mpI64(testNow.Add(3*time.Hour).UnixMilli()))...)
	if _, err := testDecoder().Decode(fut, testKafkaTS); event.ReasonOf(err) != event.ReasonTSInFuture {
		t.Errorf("default MaxFuture: %v", err)
	}
	if _, err := (event.Decoder{Now: fixedNow, MaxFuture: 4 * time.Hour}).Decode(fut, testKafkaTS); err != nil {
		t.Errorf("MaxFuture 4h: %v", err)
	}
	// Zero Decoder uses the real clock.
	now := baseEvent()
	now.TS = time.Now().UnixMilli()
	enc, _ := event.Encode(now)
	if _, err := event.Decode(enc, time.Now()); err != nil {
		t.Errorf("package Decode: %v", err)
	}
}

// TestDecodeDoesNotAlias checks that decoded strings survive reuse of the
// input buffer (Kafka clients reuse them).
func TestDecodeDoesNotAlias(t *testing.T) {
	for _, enc := range []func(event.Event) ([]byte, error){event.Encode, event.EncodeJSON} {
		b, _ := enc(baseEvent())
		ev, err := testDecoder().Decode(b, testKafkaTS)
		if err != nil {
			t.Fatal(err)
		}
		for i := range b {
			b[i] = 'X'
		}
		if ev != baseEvent() {
			t.Errorf("decoded event changed with its input: %+v", ev)
		}
	}
}
