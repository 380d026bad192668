package bench_test

import (
	"bytes"
	"context"
	"encoding/json"
	"os/exec"
	"path/filepath"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/bench"
	"github.com/recstream/recstream/internal/redistest/redisproc"
)

// TestQuickRun runs the whole benchmark at smoke-test sizes and checks that
// every figure of the JSON report is there and positive.
func TestQuickRun(t *testing.T) {
	if !redisproc.Available() {
		t.Fatal("redis-server is not on PATH: install redis-server (./scripts/test.sh does)")
	}
	ctx, cancel := context.WithTimeout(context.Background(), 2*time.Minute)
	defer cancel()
	start := time.Now()
	// Quick mode, smaller still: a few seconds on an idle 2-core machine
	// (about 10 s with the race detector).
	// The processor-alone phase runs the recstream binary, built here.
	bin := filepath.Join(t.TempDir(), "recstream")
	build := exec.Command("go", "build", "-o", bin, "./cmd/recstream")
	build.Dir = ".."
	if out, err := build.CombinedOutput(); err != nil {
		t.Fatalf("go build: %v\n%s", err, out)
	}
	res, err := bench.Run(ctx, bench.Options{Quick: true, Events: 10000, Duration: 2 * time.Second, RescoreUsers: 500, HSETRequests: 20000, ProcessorBinary: bin})
	if err != nil {
		t.Fatal(err)
	}
	t.Logf("quick run: %s", time.Since(start).Round(time.Millisecond))
	b, err := json.Marshal(res)
	if err != nil {
		t.Fatal(err)
	}
	var m map[string]map[string]any
	if err := json.Unmarshal(b, &m); err != nil {
		t.Fatal(err)
	}
	positive := map[string][]string{
		"machine":              {"cpus", "cpu_model", "redis_version"},
		"params":               {"users", "items", "events", "rate", "partitions", "rescore_users", "batch_max_events"},
		"ingest":               {"events", "seconds", "events_per_s", "client_cmds_per_event", "redis_cmds_per_event", "redis_cpu_us_per_event", "process_cpu_us_per_event", "kafka_only_cpu_us_per_event", "users", "items", "commands"},
		"rescore":              {"users", "seconds", "users_per_s", "client_cmds_per_user", "redis_cmds_per_user", "redis_cpu_us_per_user", "process_cpu_us_per_user", "ease_items", "ease_refresh_s", "commands"},
		"freshness":            {"offered_per_s", "produced_per_s", "seconds", "samples", "p50_ms", "p99_ms", "p999_ms", "max_ms", "lists_per_s", "process_cpu_cores", "redis_cpu_cores"},
		"memory":               {"used_memory_delta_bytes", "used_memory_per_user_bytes", "user_state_bytes", "user_state_p99_bytes", "user_list_bytes", "item_state_bytes", "item_state_p99_bytes", "events_per_user", "process_peak_rss_bytes", "process_heap_inuse_bytes"},
		"redis_benchmark_hset": {"command", "ops_per_s", "ingest_ratio", "rescore_ratio"},
	}
	for sec, fields := range positive {
		s, ok := m[sec]
		if !ok {
			t.Errorf("JSON has no %q section", sec)
			continue
		}
		for _, f := range fields {
			switch v := s[f].(type) {
			case float64:
				if v <= 0 {
					t.Errorf("%s.%s = %v, want > 0", sec, f, v)
				}
			case string:
				if v == "" {
					t.Errorf("%s.%s is empty", sec, f)
				}
			case map[string]any:
				if len(v) == 0 {
					t.Errorf("%s.%s is empty", sec, f)
				}
			default:
				t.Errorf("%s.%s missing or of type %T", sec, f, s[f])
			}
		}
	}
	if !res.Machine.ScriptCallsCounted {
		t.Errorf("INFO commandstats did not count a script's HSET; redis-server 7 does")
	}
	if res.Ingest.RedisCmdsPerEvent < res.Ingest.ClientCmdsPerEvent {
		t.Errorf("commandstats counted %.2f commands per event, fewer than the %.2f the client sent", res.Ingest.RedisCmdsPerEvent, res.Ingest.ClientCmdsPerEvent)
	}
	if res.Ingest.Users > res.Params.Users || res.Ingest.Items > res.Params.Items {
		t.Errorf("state for %d users and %d items, more than generated (%d, %d)", res.Ingest.Users, res.Ingest.Items, res.Params.Users, res.Params.Items)
	}
	if pr := res.Memory.Processor; pr == nil || pr.PeakRSSBytes <= 0 || pr.RefreshReqs <= 0 || pr.Events != 10000 {
		t.Errorf("processor-alone phase: %+v, want a peak RSS and refresh requests over 10000 events", pr)
	} else if pr.PeakRSSBytes >= res.Memory.ProcessPeakRSSBytes*4 {
		t.Errorf("processor alone peaked at %d bytes, implausibly above the benchmark process's %d", pr.PeakRSSBytes, res.Memory.ProcessPeakRSSBytes)
	}
	if res.Freshness.P50Ms > res.Freshness.P99Ms || res.Freshness.P99Ms > res.Freshness.P999Ms {
		t.Errorf("freshness percentiles out of order: %+v", res.Freshness)
	}
	var tbl bytes.Buffer
	if err := res.WriteTable(&tbl); err != nil {
		t.Fatal(err)
	}
	for _, want := range []string{"ingest, sustained", "rescoring", "freshness", "processor peak RSS", "peak RSS", "redis-benchmark"} {
		if !strings.Contains(tbl.String(), want) {
			t.Errorf("table lacks %q:\n%s", want, tbl.String())
		}
	}
}
