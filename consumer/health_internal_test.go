package consumer

import (
	"bytes"
	"context"
	"errors"
	"log/slog"
	"strings"
	"testing"
)

// A step retried before its role started (a topic that does not exist
// yet) is logged at its first failure and at its recovery, once each, as
// one retried later is.
func TestRetryLogsFirstFailure(t *testing.T) {
	for _, started := range []bool{false, true} {
		var out bytes.Buffer
		h := &health{role: "ingest", log: slog.New(slog.NewTextHandler(&out, nil))}
		if started {
			h.start()
		}
		fails := 3
		err := h.retry(context.Background(), "reading the partitions of t", func() error {
			if fails > 0 {
				if fails < 3 && h.Ready() {
					t.Error("ready while a step fails")
				}
				fails--
				return errors.New("unknown topic")
			}
			return nil
		})
		if err != nil {
			t.Fatal(err)
		}
		log := out.String()
		if strings.Count(log, "level=WARN") != 1 || !strings.Contains(log, "reading the partitions of t failed; retrying until it succeeds") || !strings.Contains(log, "unknown topic") {
			t.Errorf("started %v: log %q, want one warning naming the step and the error", started, log)
		}
		if strings.Count(log, "succeeded; recovered") != 1 || !h.Ready() {
			t.Errorf("started %v: log %q, ready %v; want one recovery and ready", started, log, h.Ready())
		}
		out.Reset()
		if err := h.retry(context.Background(), "step", func() error { return nil }); err != nil || out.Len() > 0 {
			t.Errorf("a step that succeeds at once logged %q (err %v)", out.String(), err)
		}
	}
}
