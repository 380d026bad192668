package store_test

import (
	"context"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

func TestRedisMetrics(t *testing.T) {
	rs := redistest.Start(t)
	opt := rs.Options()
	opt.MaxRetries = -1
	opt.DialTimeout = 200 * time.Millisecond
	rdb := redis.NewClient(opt)
	defer rdb.Close()
	reg := prometheus.NewRegistry()
	m := store.NewRedisMetrics(reg)
	m.InstrumentClient(rdb)
	ctx := context.Background()

	// A miss (redis.Nil) and NOSCRIPT are not failures.
	if err := rdb.Get(ctx, "missing").Err(); err != redis.Nil {
		t.Fatalf("GET missing: %v", err)
	}
	if err := rdb.EvalSha(ctx, "0123456789012345678901234567890123456789", nil).Err(); err == nil {
		t.Fatal("EVALSHA of an unknown script succeeded")
	}
	pipe := rdb.Pipeline()
	pipe.Set(ctx, "k", "v", 0)
	pipe.ZAdd(ctx, "z", redis.Z{Score: 1, Member: "a"})
	if _, err := pipe.Exec(ctx); err != nil {
		t.Fatal(err)
	}
	// A real error reply counts, under its command (or "other").
	if err := rdb.LPush(ctx, "k", "x").Err(); err == nil {
		t.Fatal("LPUSH on a string succeeded")
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues("get")) + testutil.ToFloat64(m.Errors.WithLabelValues("evalsha")); got != 0 {
		t.Errorf("miss and NOSCRIPT counted as %v errors", got)
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues("other")); got != 1 {
		t.Errorf("WRONGTYPE errors = %v, want 1", got)
	}
	if n := histCount(t, reg, "get"); n != 1 {
		t.Errorf("GET observations = %d, want 1", n)
	}
	if n := histCount(t, reg, "pipeline"); n != 1 {
		t.Errorf("pipeline observations = %d, want 1", n)
	}
	// A server that is gone: connection errors are counted.
	rs.Kill(t)
	if err := rdb.Get(ctx, "k").Err(); err == nil {
		t.Fatal("GET after kill succeeded")
	}
	if got := testutil.ToFloat64(m.Errors.WithLabelValues("get")); got != 1 {
		t.Errorf("GET errors after kill = %v, want 1", got)
	}
	if got := testutil.ToFloat64(m.Dials.WithLabelValues("error")); got < 1 {
		t.Errorf("failed dials = %v, want >= 1", got)
	}
	// The command label stays within a fixed set.
	n, err := testutil.GatherAndCount(reg, "recstream_redis_command_duration_seconds")
	if err != nil || n > 6 {
		t.Errorf("%d command series (%v)", n, err)
	}
}

func histCount(t *testing.T, reg *prometheus.Registry, command string) uint64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() != "recstream_redis_command_duration_seconds" {
			continue
		}
		for _, m := range f.GetMetric() {
			for _, l := range m.GetLabel() {
				if l.GetName() == "command" && l.GetValue() == command {
					return m.GetHistogram().GetSampleCount()
				}
			}
		}
	}
	return 0
}
