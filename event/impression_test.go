package event_test

import (
	"reflect"
	"strconv"
	"strings"
	"testing"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/event"
)

func impDecoder() event.Decoder {
	d := testDecoder()
	d.Variants = []string{"control", "b"}
	d.MaxItems = 5
	return d
}

func baseImpression() event.Event {
	return event.Event{
		UserID: "user-1", Type: event.Impression, TS: testTS, SessionID: "s",
		Shown: &event.Shown{
			Items: []string{"i1", "i|2", "ユ"}, Sources: []string{"item_knn", "trending", "content"},
			Variant: "b", GeneratedAt: testTS - 1000,
		},
	}
}

func TestImpressionRoundTrip(t *testing.T) {
	d := impDecoder()
	minimal := event.Event{UserID: "u", Type: event.Impression, TS: testTS, Shown: &event.Shown{Items: []string{"x"}}}
	many := baseImpression()
	many.Shown = &event.Shown{Items: []string{"a", "b", "c", "d", "e"}}
	for _, e := range []event.Event{baseImpression(), minimal, many} {
		for name, enc := range map[string]func(event.Event) ([]byte, error){"msgpack": event.Encode, "json": event.EncodeJSON} {
			b, err := enc(e)
			if err != nil {
				t.Fatalf("%s: %v", name, err)
			}
			got, err := d.Decode(b, testKafkaTS)
			if err != nil {
				t.Fatalf("%s: Decode(%q): %v", name, b, err)
			}
			if !reflect.DeepEqual(got, e) {
				t.Errorf("%s: round trip\n got %+v %+v\nwant %+v %+v", name, got, got.Shown, e, e.Shown)
			}
		}
	}
	// The reference msgpack encoder's output (arrays of str and bin, other
	// integer widths) decodes to the same impression.
	b, err := msgpack.Marshal(map[string]any{
		"user_id": "user-1", "type": "impression", "ts": uint64(testTS), "session_id": "s",
		"items": []any{"i1", []byte("i|2"), "ユ"}, "sources": []string{"item_knn", "trending", "content"},
		"variant": "b", "generated_at": float64(testTS - 1000),
	})
	if err != nil {
		t.Fatal(err)
	}
	got, err := d.Decode(b, testKafkaTS)
	if err != nil || !reflect.DeepEqual(got, baseImpression()) {
		t.Errorf("reference msgpack: %+v %+v, %v", got, got.Shown, err)
	}
}

// TestImpressionFieldsIgnoredOnOtherTypes: an interaction event that
// carries impression fields decodes as before, without them.
func TestImpressionFieldsIgnoredOnOtherTypes(t *testing.T) {
	ev, err := impDecoder().Decode([]byte(`{"user_id":"u","item_id":"i","type":"click","items":["a"],"variant":"zz","ts":`+itoa(testTS)+`}`), testKafkaTS)
	if err != nil || ev.Shown != nil || ev.ItemID != "i" {
		t.Fatalf("got %+v, %v", ev, err)
	}
}

func TestImpressionReasons(t *testing.T) {
	ts := itoa(testTS)
	js := func(fields string) []byte {
		return []byte(`{"user_id":"u","type":"impression","ts":` + ts + fields + `}`)
	}
	mp := func(pairs ...kv) []byte {
		return mpMap(t, append([]kv{{"user_id", mpStr("u")}, {"type", mpStr("impression")}, {"ts", mpI64(testTS)}}, pairs...)...)
	}
	tests := []struct {
		name string
		b    []byte
		want event.Reason
	}{
		{"json no items", js(``), event.ReasonMissingItems},
		{"json null items", js(`,"items":null`), event.ReasonMissingItems},
		{"json empty items", js(`,"items":[]`), event.ReasonMissingItems},
		{"msgpack empty items", mp(kv{"items", mpArr()}), event.ReasonMissingItems},
		{"json too many items", js(`,"items":["a","b","c","d","e","f"]`), event.ReasonTooManyItems},
		{"msgpack too many items", mp(kv{"items", mpArr(mpStr("a"), mpStr("b"), mpStr("c"), mpStr("d"), mpStr("e"), mpStr("f"))}), event.ReasonTooManyItems},
		{"json unknown variant", js(`,"items":["a"],"variant":"c"`), event.ReasonUnknownVariant},
		{"msgpack unknown variant", mp(kv{"items", mpArr(mpStr("a"))}, kv{"variant", mpStr("Control")}), event.ReasonUnknownVariant},
		{"json brace in item", js(`,"items":["a","b{x}"]`), event.ReasonBadItemID},
		{"json space in item", js(`,"items":["a b"]`), event.ReasonBadItemID},
		{"json empty item", js(`,"items":[""]`), event.ReasonBadItemID},
		{"msgpack control char in item", mp(kv{"items", mpArr(mpStr("a\x01"))}), event.ReasonBadItemID},
		{"json long item", js(`,"items":["` + strings.Repeat("x", 129) + `"]`), event.ReasonIDTooLong},
		{"json item not a string", js(`,"items":["a",7]`), event.ReasonWrongType},
		{"msgpack item not a string", mp(kv{"items", mpArr(mpStr("a"), mpMapW(kv{"x", mpNil()}))}), event.ReasonWrongType},
		{"json items not an array", js(`,"items":"a"`), event.ReasonWrongType},
		{"json items too deep", js(`,"items":[[[["a"]]]]`), event.ReasonTooDeep},
		{"msgpack items truncated", mp(kv{"items", mpRaw(0x93, 0xa1, 'a')}), event.ReasonMalformed},
		{"json sources length", js(`,"items":["a","b"],"sources":["trending"]`), event.ReasonBadSources},
		{"json bad source", js(`,"items":["a"],"sources":["Item-KNN"]`), event.ReasonBadSources},
		{"json item_id given", js(`,"items":["a"],"item_id":"a"`), event.ReasonItemIDNotUsed},
		{"json generated_at old", js(`,"items":["a"],"generated_at":5`), event.ReasonBadGeneratedAt},
		{"json generated_at future", js(`,"items":["a"],"generated_at":99999999999999`), event.ReasonBadGeneratedAt},
		{"json generated_at string", js(`,"items":["a"],"generated_at":"1"`), event.ReasonWrongType},
		{"json variant number", js(`,"items":["a"],"variant":1`), event.ReasonWrongType},
		{"json duplicate items", js(`,"items":["a"],"items":["b"]`), event.ReasonDuplicateField},
	}
	d := impDecoder()
	for _, tt := range tests {
		ev, err := d.Decode(tt.b, testKafkaTS)
		if got := event.ReasonOf(err); got != tt.want {
			t.Errorf("%s: reason %q (%v), want %q", tt.name, got, err, tt.want)
		}
		if err != nil && !reflect.DeepEqual(ev, event.Event{}) {
			t.Errorf("%s: non-zero event with error", tt.name)
		}
	}
	// Without configured variants, an impression may name none.
	nov := testDecoder()
	nov.Variants = []string{}
	if _, err := nov.Decode(js(`,"items":["a"],"variant":"b"`), testKafkaTS); event.ReasonOf(err) != event.ReasonUnknownVariant {
		t.Errorf("variant without configured variants: %v", err)
	}
	// Unchecked variants (Variants nil) must still be valid UTF-8, so that
	// every accepted impression can be encoded again.
	if _, err := testDecoder().Decode(mp(kv{"items", mpArr(mpStr("a"))}, kv{"variant", mpStr("\xe3")}), testKafkaTS); event.ReasonOf(err) != event.ReasonUnknownVariant {
		t.Errorf("variant not UTF-8: %v", err)
	}
	// "sources":[] is no sources.
	if ev, err := testDecoder().Decode(js(`,"items":["a"],"sources":[]`), testKafkaTS); err != nil || ev.Shown.Sources != nil {
		t.Errorf("empty sources: %v, %#v", err, ev.Shown)
	}
	if _, err := nov.Decode(js(`,"items":["a"]`), testKafkaTS); err != nil {
		t.Errorf("impression without variant: %v", err)
	}
	if _, err := nov.Decode(js(`,"items":["`+strings.Repeat("a,", 50)+`"]`), testKafkaTS); err != nil {
		t.Errorf("one item with commas: %v", err)
	}
}

func itoa(v int64) string { return strconv.FormatInt(v, 10) }
