package deploy_test

import (
	"encoding/json"
	"fmt"
	"net"
	"net/http"
	"net/url"
	"os"
	"os/exec"
	"path/filepath"
	"strconv"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/processortest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/processor"
)

// TestPrometheusReadsLag runs a real Prometheus server scraping a running
// processor (kfake broker, real Redis). The processor consumes a first set
// of events; then Redis stops, so the ingest role retries its batch and
// commits nothing, and more events are produced. The lag Prometheus reads
// per partition must equal what the broker says: high watermark minus the
// committed offset.
func TestPrometheusReadsLag(t *testing.T) {
	promBin := needTool(t, "prometheus", "prometheus")
	cfg := config.Default()
	kf := kafkatest.Start(t, 4, cfg.Topics()...)
	rs := redistest.Start(t)
	cfg.Kafka.Brokers = kf.Brokers
	cfg.Kafka.CreateTopics = false
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{rs.Addr}
	cfg.Redis.DialTimeout = 200 * time.Millisecond
	cfg.Redis.ReadTimeout = 200 * time.Millisecond
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.LagInterval = 200 * time.Millisecond
	cfg.Ingest.BatchMaxWait = 10 * time.Millisecond
	cfg.Scorer.Debounce = 10 * time.Millisecond
	cfg.Run.ShutdownTimeout = time.Second
	reg := prometheus.NewRegistry()
	_, addr, _ := processortest.Run(t, cfg, processor.Deps{Registerer: reg, Gatherer: reg})

	prom := startPrometheus(t, promBin, addr.String())

	// Phase 1: 40 events consumed and committed.
	produceEvents(t, kf, cfg.Kafka.EventsTopic, 0, 40)
	waitFor(t, 20*time.Second, "the first events to be committed", func() bool {
		_, high := kf.Offsets(t, cfg.Kafka.EventsTopic)
		com := kf.Committed(t, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic)
		for p, h := range high {
			if h > 0 && com[p] != h {
				return false
			}
		}
		return true
	})

	// Phase 2: Redis stops; 60 more events wait uncommitted.
	rs.Stop(t)
	before := kf.Committed(t, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic)
	produceEvents(t, kf, cfg.Kafka.EventsTopic, 40, 60)
	_, high := kf.Offsets(t, cfg.Kafka.EventsTopic)
	want := map[string]float64{}
	total := 0.0
	for p, h := range high {
		c := before[p] // absent: nothing committed, the lag counts from offset 0
		want[strconv.Itoa(p)] = float64(h - c)
		total += float64(h - c)
	}
	if total != 60 {
		t.Fatalf("backlog %v messages, want 60 (high %v, committed %v)", total, high, before)
	}

	q := fmt.Sprintf(`max by (partition) (recstream_consumer_lag_messages{group=%q, topic=%q})`, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic)
	var got map[string]float64
	deadline := time.Now().Add(30 * time.Second)
	for {
		got = prom.query(t, q)
		if mapsEqual(got, want) {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("PromQL %s\n got  %v\n want %v", q, got, want)
		}
		time.Sleep(250 * time.Millisecond)
	}
	t.Logf("PromQL %s = %v (high watermark minus committed offset from the broker)", q, got)

	// The other views agree: the sum, the time lag and the Redis errors the
	// retried batch caused.
	if s := prom.query(t, fmt.Sprintf(`sum(recstream_consumer_lag_messages{group=%q})`, cfg.Kafka.IngestGroup)); s[""] != 60 {
		t.Errorf("sum of lag = %v, want 60", s)
	}
	waitFor(t, 20*time.Second, "time lag and Redis errors in Prometheus", func() bool {
		lagSec := prom.query(t, fmt.Sprintf(`max(recstream_consumer_lag_seconds{group=%q})`, cfg.Kafka.IngestGroup))
		redisErr := prom.query(t, `sum(recstream_redis_errors_total)`)
		return lagSec[""] > 0 && redisErr[""] > 0
	})
	if r := prom.query(t, `recstream_broker_reachable`); r[""] != 1 {
		t.Errorf("recstream_broker_reachable = %v, want 1", r)
	}
	// Label cardinality: no user or item label, a bounded number of series.
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	series := 0
	for _, f := range fams {
		for _, m := range f.GetMetric() {
			series++
			for _, l := range m.GetLabel() {
				switch l.GetName() {
				case "user", "user_id", "item", "item_id", "session_id":
					t.Errorf("%s has a %s label", f.GetName(), l.GetName())
				}
			}
		}
	}
	if series > 400 {
		t.Errorf("%d series for 4 partitions and 17 users", series)
	}
	// /readyz reports the outage.
	res, err := http.Get("http://" + addr.String() + "/readyz")
	if err != nil {
		t.Fatal(err)
	}
	res.Body.Close()
	if res.StatusCode != http.StatusServiceUnavailable {
		t.Errorf("/readyz during the Redis outage: %d, want 503", res.StatusCode)
	}
}

func mapsEqual(a, b map[string]float64) bool {
	if len(a) != len(b) {
		return false
	}
	for k, v := range a {
		if w, ok := b[k]; !ok || w != v {
			return false
		}
	}
	return true
}

func produceEvents(t *testing.T, kf *kafkatest.Cluster, topic string, from, n int) {
	t.Helper()
	now := time.Now().UnixMilli()
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		u := fmt.Sprintf("u%d", (from+i)%17)
		ev := event.Event{UserID: u, ItemID: fmt.Sprintf("i%d", (from+i)%11), Type: event.Click, TS: now}
		b, err := event.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(u), Value: b}
	}
	kf.Produce(t, topic, msgs...)
}

func waitFor(t *testing.T, d time.Duration, what string, ok func() bool) {
	t.Helper()
	deadline := time.Now().Add(d)
	for !ok() {
		if time.Now().After(deadline) {
			t.Fatalf("timed out after %s waiting for %s", d, what)
		}
		time.Sleep(100 * time.Millisecond)
	}
}

type promServer struct{ base string }

// startPrometheus runs prometheus on a free port with temporary storage,
// scraping target every second, and waits until it is ready.
func startPrometheus(t *testing.T, bin, target string) *promServer {
	t.Helper()
	dir := t.TempDir()
	cfg := fmt.Sprintf("global:\n  scrape_interval: 1s\n  evaluation_interval: 1s\nscrape_configs:\n  - job_name: recstream\n    static_configs:\n      - targets: [%q]\n", target)
	cf := filepath.Join(dir, "prometheus.yml")
	if err := os.WriteFile(cf, []byte(cfg), 0o644); err != nil {
		t.Fatal(err)
	}
	ln, err := net.Listen("tcp", "127.0.0.1:0")
	if err != nil {
		t.Fatal(err)
	}
	listen := ln.Addr().String()
	ln.Close()
	cmd := exec.Command(bin, "--config.file="+cf, "--storage.tsdb.path="+filepath.Join(dir, "data"),
		"--web.listen-address="+listen, "--log.level=warn")
	var logBuf strings.Builder
	var mu sync.Mutex
	cmd.Stdout, cmd.Stderr = lockedWriter{&mu, &logBuf}, lockedWriter{&mu, &logBuf}
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	done := make(chan struct{})
	go func() { _ = cmd.Wait(); close(done) }()
	t.Cleanup(func() {
		_ = cmd.Process.Kill()
		<-done
		if t.Failed() {
			mu.Lock()
			t.Logf("prometheus log:\n%s", logBuf.String())
			mu.Unlock()
		}
	})
	ps := &promServer{base: "http://" + listen}
	waitFor(t, 20*time.Second, "prometheus to be ready", func() bool {
		select {
		case <-done:
			mu.Lock()
			defer mu.Unlock()
			t.Fatalf("prometheus exited:\n%s", logBuf.String())
		default:
		}
		res, err := http.Get(ps.base + "/-/ready")
		if err != nil {
			return false
		}
		res.Body.Close()
		return res.StatusCode == http.StatusOK
	})
	return ps
}

type lockedWriter struct {
	mu *sync.Mutex
	b  *strings.Builder
}

func (w lockedWriter) Write(p []byte) (int, error) {
	w.mu.Lock()
	defer w.mu.Unlock()
	return w.b.Write(p)
}

// query runs an instant PromQL query and returns each series' value by its
// partition label ("" when absent).
func (ps *promServer) query(t *testing.T, q string) map[string]float64 {
	t.Helper()
	res, err := http.Get(ps.base + "/api/v1/query?query=" + url.QueryEscape(q))
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	var body struct {
		Status string `json:"status"`
		Error  string `json:"error"`
		Data   struct {
			Result []struct {
				Metric map[string]string `json:"metric"`
				Value  [2]any            `json:"value"`
			} `json:"result"`
		} `json:"data"`
	}
	if err := json.NewDecoder(res.Body).Decode(&body); err != nil {
		t.Fatal(err)
	}
	if body.Status != "success" {
		t.Fatalf("query %s: %s", q, body.Error)
	}
	out := map[string]float64{}
	for _, r := range body.Data.Result {
		s, _ := r.Value[1].(string)
		v, err := strconv.ParseFloat(s, 64)
		if err != nil {
			t.Fatalf("query %s: value %v", q, r.Value)
		}
		out[r.Metric["partition"]] = v
	}
	return out
}
