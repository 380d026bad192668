package event_test

import (
	"testing"

	"github.com/recstream/recstream/event"
)

func benchDecode(b *testing.B, msg []byte) {
	d := testDecoder()
	if _, err := d.Decode(msg, testKafkaTS); err != nil {
		b.Fatal(err)
	}
	b.ReportAllocs()
	b.SetBytes(int64(len(msg)))
	for b.Loop() {
		if _, err := d.Decode(msg, testKafkaTS); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkDecodeMsgpack(b *testing.B) {
	msg, err := event.Encode(baseEvent())
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, msg)
}

func BenchmarkDecodeJSON(b *testing.B) {
	msg, err := event.EncodeJSON(baseEvent())
	if err != nil {
		b.Fatal(err)
	}
	benchDecode(b, msg)
}

func BenchmarkDecodeInvalid(b *testing.B) {
	msg := []byte(`{"user_id":"u","item_id":"i","type":"click","x":[[[[[]]]]]}`)
	d := testDecoder()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := d.Decode(msg, testKafkaTS); err == nil {
			b.Fatal("accepted")
		}
	}
}

func BenchmarkEncode(b *testing.B) {
	e := baseEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.Encode(e); err != nil {
			b.Fatal(err)
		}
	}
}

func BenchmarkEncodeJSON(b *testing.B) {
	e := baseEvent()
	b.ReportAllocs()
	for b.Loop() {
		if _, err := event.EncodeJSON(e); err != nil {
			b.Fatal(err)
		}
	}
}
