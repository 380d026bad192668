package event_test

import (
	"bytes"
	"encoding/json"
	"errors"
	"reflect"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/event"
)

// fuzzSeeds are added with f.Add; testdata/fuzz/FuzzDecode holds more.
func fuzzSeeds(tb testing.TB) [][]byte {
	full, err := event.Encode(baseEvent())
	if err != nil {
		tb.Fatal(err)
	}
	fullJSON, err := event.EncodeJSON(baseEvent())
	if err != nil {
		tb.Fatal(err)
	}
	return [][]byte{
		full,
		fullJSON,
		baseMP(tb, kv{"value", mpF32(1.5)}, kv{"x", mpArr(mpMapW(kv{"a", mpArr(mpNil())}))}),
		mpMap(tb, with(basePairs(), "ts", mpU64(0))...),
		mpMap(tb, with(basePairs(), "user_id", mpBin([]byte("u\xff")))...),
		full[:len(full)-3],
		{0xdf, 0x80, 0x00, 0x00, 0x00, 0xa1, 'a', 0x01, 0xa1, 'b'},
		append([]byte("\x81\xa1x"), bytes.Repeat([]byte{0x91}, 10)...),
		[]byte(`{"user\u005fid":"u\ud83c\udf89","item_id":"i","type":"purchase","ts":1.7487791950E12,"value":-0.5e-3,"x":[{"y":[]}]}`),
		[]byte(`{"user_id":"u","item_id":"i","type":"click","type":"browse"}`),
		[]byte(` {"x":` + strings.Repeat("[", 10) + `}`),
		[]byte(validJSON + " {}"),
		[]byte(`{"user_id":"u\ud800","item_id":"i\t","type":"view","ts":"1"}`),
		[]byte("\t\r\n "),
		[]byte(`{"user_id":"u","type":"impression","items":["a","b\u0041"],"sources":["item_knn","trending"],"variant":"b","generated_at":1748779195000}`),
		[]byte(`{"user_id":"u","type":"impression","items":[1,["x"]],"sources":"x"}`),
		mpMap(tb, kv{"user_id", mpStr("u")}, kv{"type", mpStr("impression")}, kv{"items", mpArr(mpStr("a"), mpBin([]byte("b")))}, kv{"variant", mpStr("a")}),
	}
}

func FuzzDecode(f *testing.F) {
	for _, s := range fuzzSeeds(f) {
		f.Add(s)
	}
	d := testDecoder()
	valid := map[event.Reason]bool{}
	for _, r := range event.Reasons {
		valid[r] = true
	}
	f.Fuzz(func(t *testing.T, b []byte) {
		ev, err := d.Decode(b, testKafkaTS)
		checkAgainstReference(t, b, ev, err)
		if err != nil {
			var ie *event.InvalidError
			if !errors.As(err, &ie) {
				t.Fatalf("error %T %v is not *InvalidError", err, err)
			}
			if !valid[ie.Reason] {
				t.Fatalf("reason %q not in Reasons", ie.Reason)
			}
			if ev != (event.Event{}) {
				t.Fatalf("non-zero event %+v with error %v", ev, err)
			}
			return
		}
		if err := ev.Validate(d); err != nil {
			t.Fatalf("decoded event %+v does not validate: %v", ev, err)
		}
		for name, enc := range map[string]func(event.Event) ([]byte, error){"Encode": event.Encode, "EncodeJSON": event.EncodeJSON} {
			out, err := enc(ev)
			if err != nil {
				t.Fatalf("%s(%+v): %v", name, ev, err)
			}
			ev2, err := d.Decode(out, testKafkaTS)
			if err != nil {
				t.Fatalf("Decode(%s(%+v)) = %q: %v", name, ev, out, err)
			}
			if !reflect.DeepEqual(ev2, ev) {
				t.Fatalf("%s round trip:\n got %+v\nwant %+v", name, ev2, ev)
			}
		}
	})
}

// checkAgainstReference compares the decoder's structural verdict with
// encoding/json (for JSON input) or the reference msgpack decoder (for
// msgpack input).
func checkAgainstReference(t *testing.T, b []byte, ev event.Event, err error) {
	r := event.ReasonOf(err)
	if r == event.ReasonEmpty || r == event.ReasonTooLarge || r == event.ReasonNotObject || r == event.ReasonTooDeep {
		return
	}
	fieldLevel := err == nil || (r != event.ReasonMalformed && r != event.ReasonTrailingData)
	trimmed := bytes.TrimLeft(b, " \t\r\n")
	if len(trimmed) > 0 && trimmed[0] == '{' {
		ok := json.Valid(b)
		if fieldLevel && !ok {
			t.Fatalf("encoding/json rejects %q, decoder said %v", b, err)
		}
		if !fieldLevel && ok {
			t.Fatalf("encoding/json accepts %q, decoder said %v", b, err)
		}
		if err == nil {
			compareJSONStrings(t, b, ev)
		}
		return
	}
	br := bytes.NewReader(b)
	first := msgpack.NewDecoder(br).Skip()
	rest := br.Len()
	switch {
	case fieldLevel && (first != nil || rest != 0):
		t.Fatalf("reference msgpack decoder: %v, %d bytes left in %q; decoder said %v", first, rest, b, err)
	case r == event.ReasonMalformed && first == nil:
		t.Fatalf("reference msgpack decoder accepts the first value of %q, decoder said %v", b, err)
	case r == event.ReasonTrailingData && (first != nil || rest == 0):
		t.Fatalf("reference msgpack decoder: %v, %d bytes left in %q; decoder said %v", first, rest, b, err)
	}
}

// compareJSONStrings checks the decoded strings against encoding/json's
// unescaping.
func compareJSONStrings(t *testing.T, b []byte, ev event.Event) {
	var m map[string]json.RawMessage
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatalf("encoding/json: %v", err)
	}
	for k, got := range map[string]string{"user_id": ev.UserID, "item_id": ev.ItemID, "session_id": ev.SessionID, "type": ev.Type.String()} {
		raw, ok := m[k]
		if !ok || string(raw) == "null" {
			if got != "" && k == "session_id" {
				t.Fatalf("%s absent but decoded as %q", k, got)
			}
			continue
		}
		var want string
		if err := json.Unmarshal(raw, &want); err != nil {
			t.Fatalf("encoding/json %s: %v", k, err)
		}
		if got != want {
			t.Fatalf("%s: decoded %q, encoding/json %q", k, got, want)
		}
	}
}
