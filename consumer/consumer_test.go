package consumer_test

import (
	"testing"

	"github.com/recstream/recstream/consumer"
)

func TestRefreshRequestRoundTrip(t *testing.T) {
	in := consumer.RefreshRequest{User: "u{x}|1", TS: 1764400000123}
	out, err := consumer.DecodeRefresh(consumer.EncodeRefresh(in))
	if err != nil || out != in {
		t.Fatalf("round trip: %+v, %v", out, err)
	}
	for _, bad := range []string{"", "{}", `{"ts":1}`, "nope"} {
		if _, err := consumer.DecodeRefresh([]byte(bad)); err == nil {
			t.Errorf("DecodeRefresh(%q) accepted", bad)
		}
	}
}
