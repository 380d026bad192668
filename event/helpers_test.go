package event_test

import (
	"bytes"
	"errors"
	"math"
	"testing"
	"time"

	"github.com/vmihailenco/msgpack/v5"

	"github.com/recstream/recstream/event"
)

var (
	inf    = math.Inf(1)
	time2d = 48 * time.Hour
	// testNow is the fixed clock every test decoder uses.
	testNow = time.Date(2025, 6, 1, 12, 0, 0, 0, time.UTC)
	// testKafkaTS is the Kafka record timestamp passed to Decode.
	testKafkaTS = testNow.Add(-time.Minute)
	// testTS is the ts of baseEvent.
	testTS = testNow.Add(-5 * time.Second).UnixMilli()
)

func asInvalid(err error, target **event.InvalidError) bool { return errors.As(err, target) }

func fixedNow() time.Time { return testNow }

func testDecoder() event.Decoder { return event.Decoder{Now: fixedNow} }

func baseEvent() event.Event {
	return event.Event{
		UserID:    "user-1",
		ItemID:    "item-42",
		Type:      event.Click,
		TS:        testTS,
		Value:     19.99,
		SessionID: "sess-9",
	}
}

// mpw is one msgpack value written with the reference encoder, so the tests
// check the decoder against an independent msgpack implementation.
type mpw func(e *msgpack.Encoder) error

type kv struct {
	k string
	v mpw
}

func mpStr(s string) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeString(s) } }
func mpBin(b []byte) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeBytes(b) } }
func mpNil() mpw          { return func(e *msgpack.Encoder) error { return e.EncodeNil() } }
func mpBool(b bool) mpw   { return func(e *msgpack.Encoder) error { return e.EncodeBool(b) } }
func mpI8(v int8) mpw     { return func(e *msgpack.Encoder) error { return e.EncodeInt8(v) } }
func mpI16(v int16) mpw   { return func(e *msgpack.Encoder) error { return e.EncodeInt16(v) } }
func mpI32(v int32) mpw   { return func(e *msgpack.Encoder) error { return e.EncodeInt32(v) } }
func mpI64(v int64) mpw   { return func(e *msgpack.Encoder) error { return e.EncodeInt64(v) } }
func mpU8(v uint8) mpw    { return func(e *msgpack.Encoder) error { return e.EncodeUint8(v) } }
func mpU16(v uint16) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeUint16(v) } }
func mpU32(v uint32) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeUint32(v) } }
func mpU64(v uint64) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeUint64(v) } }
func mpF32(v float32) mpw { return func(e *msgpack.Encoder) error { return e.EncodeFloat32(v) } }
func mpF64(v float64) mpw { return func(e *msgpack.Encoder) error { return e.EncodeFloat64(v) } }
func mpRaw(b ...byte) mpw {
	return func(e *msgpack.Encoder) error { return e.Encode(msgpack.RawMessage(b)) }
}
func mpRawS(s string) mpw { return mpRaw([]byte(s)...) }
func mpFixInt(v int) mpw  { return func(e *msgpack.Encoder) error { return e.EncodeInt(int64(v)) } }
func mpArr(vs ...mpw) mpw {
	return func(e *msgpack.Encoder) error {
		if err := e.EncodeArrayLen(len(vs)); err != nil {
			return err
		}
		for _, v := range vs {
			if err := v(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// mpMap encodes the pairs, in order, as a msgpack map.
func mpMap(t testing.TB, pairs ...kv) []byte {
	t.Helper()
	var buf bytes.Buffer
	e := msgpack.NewEncoder(&buf)
	if err := mpMapW(pairs...)(e); err != nil {
		t.Fatal(err)
	}
	return buf.Bytes()
}

func mpMapW(pairs ...kv) mpw {
	return func(e *msgpack.Encoder) error {
		if err := e.EncodeMapLen(len(pairs)); err != nil {
			return err
		}
		for _, p := range pairs {
			if err := e.EncodeString(p.k); err != nil {
				return err
			}
			if err := p.v(e); err != nil {
				return err
			}
		}
		return nil
	}
}

// baseMP returns the required fields of a valid msgpack event followed by
// extra pairs.
func baseMP(t testing.TB, extra ...kv) []byte {
	return mpMap(t, append(basePairs(), extra...)...)
}

// without returns pairs minus the named keys.
func without(pairs []kv, keys ...string) []kv {
	var out []kv
outer:
	for _, p := range pairs {
		for _, k := range keys {
			if p.k == k {
				continue outer
			}
		}
		out = append(out, p)
	}
	return out
}

// with returns pairs with key k set to v (replacing it, or appended).
func with(pairs []kv, k string, v mpw) []kv {
	out := append([]kv(nil), pairs...)
	for i := range out {
		if out[i].k == k {
			out[i].v = v
			return out
		}
	}
	return append(out, kv{k, v})
}

func basePairs() []kv {
	return []kv{
		{"user_id", mpStr("user-1")},
		{"item_id", mpStr("item-42")},
		{"type", mpStr("click")},
		{"ts", mpI64(testTS)},
	}
}
