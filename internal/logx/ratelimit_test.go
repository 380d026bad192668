package logx_test

import (
	"bytes"
	"context"
	"encoding/json"
	"fmt"
	"log/slog"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/internal/logx"
)

func TestRateLimit(t *testing.T) {
	var buf bytes.Buffer
	base := slog.NewJSONHandler(&buf, &slog.HandlerOptions{Level: slog.LevelDebug})
	log := slog.New(logx.RateLimit(base, time.Hour)).With("role", "ingest")
	for i := 0; i < 50; i++ {
		log.Warn("fetching events", "attempt", i)
		log.Info("recovered")
	}
	log.Warn("committing offsets")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	var warns, infos, commits int
	for _, l := range lines {
		var rec map[string]any
		if err := json.Unmarshal([]byte(l), &rec); err != nil {
			t.Fatal(err)
		}
		if rec["role"] != "ingest" {
			t.Errorf("derived attrs lost: %s", l)
		}
		switch rec["msg"] {
		case "fetching events":
			warns++
		case "recovered":
			infos++
		case "committing offsets":
			commits++
		}
	}
	if warns != 1 || infos != 50 || commits != 1 {
		t.Fatalf("warns %d infos %d commits %d, want 1 50 1:\n%s", warns, infos, commits, buf.String())
	}
}

func TestRateLimitReportsSuppressed(t *testing.T) {
	var buf bytes.Buffer
	h := logx.RateLimit(slog.NewJSONHandler(&buf, nil), 10*time.Second)
	t0 := time.Unix(1000, 0)
	for i := 0; i < 5; i++ {
		r := slog.NewRecord(t0.Add(time.Duration(i)*time.Second), slog.LevelWarn, "redis down", 0)
		if err := h.Handle(context.Background(), r); err != nil {
			t.Fatal(err)
		}
	}
	r := slog.NewRecord(t0.Add(11*time.Second), slog.LevelWarn, "redis down", 0)
	if err := h.Handle(context.Background(), r); err != nil {
		t.Fatal(err)
	}
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 {
		t.Fatalf("got %d lines, want 2:\n%s", len(lines), buf.String())
	}
	if !strings.Contains(lines[1], `"suppressed":4`) {
		t.Errorf("second line lacks suppressed=4: %s", lines[1])
	}
}

// Records formatted from one printf template are limited together, and the
// template attribute is not written.
func TestRateLimitTemplate(t *testing.T) {
	var buf bytes.Buffer
	log := slog.New(logx.RateLimit(slog.NewJSONHandler(&buf, nil), time.Hour))
	const format = "error reading partition %d: %v"
	for p := 0; p < 8; p++ {
		log.Warn(fmt.Sprintf(format, p, "i/o timeout"), logx.Template(format))
	}
	log.Warn("another problem")
	lines := strings.Split(strings.TrimSpace(buf.String()), "\n")
	if len(lines) != 2 || !strings.Contains(lines[0], "error reading partition 0: i/o timeout") || strings.Contains(buf.String(), "logx_template") || strings.Contains(buf.String(), "%d") {
		t.Fatalf("want the first formatted line and the other problem, without the template:\n%s", buf.String())
	}
}
