package admin_test

import (
	"bytes"
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"math"
	"net/http"
	"os"
	"os/exec"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
)

// TestPlantedExperimentThroughPipeline runs the planted experiment (B's
// lists hold items users click twice as often as A's) through the real
// pipeline: 20,000 events (impressions, clicks, carts, purchases,
// browses; JSON and msgpack) on kfake, a processor with variants a and b
// and a real Redis. The experiment counters equal what the simulation
// planted, the report shows B's click-through rate about twice A's with
// a p-value below 0.01, the JSON API serves it, the metrics count it, and
// the status page in headless Chromium shows the table (when chromium is
// installed).
// experimentShot is where the test's screenshot of the status page goes:
// a temporary file, or $RECSTREAM_EXPERIMENT_SHOT to keep it.
func experimentShot(t *testing.T) string {
	if p := os.Getenv("RECSTREAM_EXPERIMENT_SHOT"); p != "" {
		return p
	}
	return t.TempDir() + "/status-page.png"
}

func TestPlantedExperimentThroughPipeline(t *testing.T) {
	cfg := config.Default()
	kf := kafkatest.Start(t, 4, cfg.Topics()...)
	rs := redistest.Start(t)
	cfg.Kafka.Brokers = kf.Brokers
	cfg.Kafka.CreateTopics = false
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{rs.Addr}
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Ingest.BatchMaxWait = 10 * time.Millisecond
	cfg.Scorer.Debounce = 50 * time.Millisecond
	cfg.Scorer.Variants = []string{"a:50", "b:50:item_knn=2"}
	cfg.Run.ShutdownTimeout = time.Second
	reg := prometheus.NewRegistry()
	p, err := processor.New(cfg, processor.Deps{Registerer: reg, Gatherer: reg, Version: "test"})
	if err != nil {
		t.Fatal(err)
	}
	addr, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	var wg sync.WaitGroup
	wg.Add(1)
	go func() {
		defer wg.Done()
		if err := p.Run(ctx); err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("processor: %v", err)
		}
	}()
	t.Cleanup(func() { cancel(); wg.Wait() })

	x := loadgen.NewExperiment(loadgen.ExperimentOptions{Users: 1000, Items: 500, CTR: []float64{0.05, 0.10}, Seed: 26})
	evs := x.Events(20000)
	msgs := make([]kafka.Message, 0, len(evs))
	for i, ev := range evs {
		enc := event.Encode
		if i%3 == 0 {
			enc = event.EncodeJSON
		}
		b, err := enc(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
	}
	kf.Produce(t, cfg.Kafka.EventsTopic, msgs...)

	// The truth the simulation planted.
	want := map[string]*experiment.Counts{"a": {}, "b": {}}
	for _, u := range x.Truth() {
		c := want[u.Variant]
		c.Users++
		c.Impressions += float64(u.Impressions)
		c.Shown += float64(u.Shown)
		c.Clicks += float64(u.Clicks)
		c.Carts += float64(u.Carts)
		c.Purchases += float64(u.Buys)
		c.Value += u.Value
	}
	var rep experiment.Report
	deadline := time.Now().Add(300 * time.Second)
	for {
		rep, err = p.ExperimentReport(ctx)
		if err == nil && len(rep.Rows) == 2 && rep.Rows[0].Impressions == want["a"].Impressions && rep.Rows[1].Impressions == want["b"].Impressions &&
			rep.Rows[0].Purchases == want["a"].Purchases && rep.Rows[1].Purchases == want["b"].Purchases {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("experiment counters did not reach the planted totals: %+v, %v", rep.Rows, err)
		}
		time.Sleep(200 * time.Millisecond)
	}
	for _, row := range rep.Rows {
		w := want[row.Variant]
		if row.Users != w.Users || row.Shown != w.Shown || row.Clicks != w.Clicks || row.Carts != w.Carts || math.Abs(row.Value-w.Value) > 1e-6 {
			t.Errorf("variant %s: users %v shown %v clicks %v carts %v value %v; planted %v %v %v %v %v",
				row.Variant, row.Users, row.Shown, row.Clicks, row.Carts, row.Value, w.Users, w.Shown, w.Clicks, w.Carts, w.Value)
		}
	}
	a, b := rep.Rows[0], rep.Rows[1]
	ratio := b.CTR.Rate / a.CTR.Rate
	t.Logf("variant  users  impressions  shown  clicks  CTR [95%% CI]                 Δ pp [95%% CI]            p        clickers p  purchases  conversion p  value")
	for _, r := range rep.Rows {
		t.Logf("%-7s  %5.0f  %11.0f  %5.0f  %6.0f  %.2f%% [%.2f%%, %.2f%%]  %+.2f [%+.2f, %+.2f]  %.2g  %.2g  %9.0f  %.2g  %.2f",
			r.Variant, r.Users, r.Impressions, r.Shown, r.Clicks, 100*r.CTR.Rate, 100*r.CTR.Low, 100*r.CTR.High,
			100*r.CTR.Diff, 100*r.CTR.DiffLow, 100*r.CTR.DiffHigh, r.CTR.P, r.Clickers.P, r.Purchases, r.Conversion.P, r.Value)
	}
	if ratio < 1.7 || ratio > 2.3 || !(b.CTR.P < 0.01) {
		t.Errorf("B's CTR %.4f is %.2f times A's %.4f with p %v; want about 2 and p < 0.01", b.CTR.Rate, ratio, a.CTR.Rate, b.CTR.P)
	}
	// The counters, exported from Redis at each scrape.
	if err := testutil.GatherAndCompare(reg, strings.NewReader(fmt.Sprintf(`
# HELP recstream_experiment_impressions_total Impression events counted for the experiment, by A/B variant (none: lists without a variant).
# TYPE recstream_experiment_impressions_total counter
recstream_experiment_impressions_total{variant="a"} %v
recstream_experiment_impressions_total{variant="b"} %v
recstream_experiment_impressions_total{variant="none"} 0
`, want["a"].Impressions, want["b"].Impressions)), "recstream_experiment_impressions_total"); err != nil {
		t.Error(err)
	}
	if n, err := testutil.GatherAndCount(reg, "recstream_experiment_attributed_total"); err != nil || n != 18 {
		t.Errorf("attributed series: %d, %v (want 3 variants × 3 types × 2 vias)", n, err)
	}
	if n, err := testutil.GatherAndCount(reg, "recstream_experiment_p_value"); err != nil || n != 3 {
		t.Errorf("p-value gauges: %d, %v", n, err)
	}

	res, err := http.Get("http://" + addr.String() + "/api/v1/experiment")
	if err != nil {
		t.Fatal(err)
	}
	var api struct {
		Control  string `json:"control"`
		Variants []struct {
			Variant string `json:"variant"`
			Clicks  float64
			CTR     struct {
				Rate *float64 `json:"rate"`
				P    *float64 `json:"p_value"`
			} `json:"ctr"`
		} `json:"variants"`
	}
	err = json.NewDecoder(res.Body).Decode(&api)
	res.Body.Close()
	if err != nil || api.Control != "a" || len(api.Variants) != 2 || api.Variants[0].CTR.P != nil || api.Variants[1].CTR.P == nil || *api.Variants[1].CTR.P != b.CTR.P {
		t.Errorf("GET /api/v1/experiment: %+v, %v", api, err)
	}

	chromium, err := exec.LookPath("chromium")
	if err != nil {
		t.Skip("chromium not on PATH: the page check needs it (apt-get install -y chromium; scripts/test.sh installs it)")
	}
	cmd := exec.Command(chromium, "--headless", "--no-sandbox", "--disable-gpu", "--disable-quic", "--no-first-run",
		"--disable-background-networking", "--disable-component-update", "--disable-sync",
		"--user-data-dir="+t.TempDir(), "--window-size=1400,2200", "--hide-scrollbars", "--screenshot="+experimentShot(t), "--dump-dom", "http://"+addr.String()+"/#experiment")
	var stdout, stderr bytes.Buffer
	cmd.Stdout, cmd.Stderr = &stdout, &stderr
	cctx, ccancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer ccancel()
	if err := runCtx(cctx, cmd); err != nil {
		t.Fatalf("chromium: %v\n%s", err, stderr.String())
	}
	dom := stdout.String()
	i := strings.Index(dom, `id="experiment-table"`)
	if i < 0 {
		t.Fatalf("the rendered page has no experiment table:\n%s", dom)
	}
	table := dom[i:]
	table = table[:strings.Index(table, "</table>")]
	for _, r := range rep.Rows {
		j := strings.Index(table, `data-variant="`+r.Variant+`"`)
		if j < 0 {
			t.Errorf("no row for variant %s in the rendered table", r.Variant)
			continue
		}
		row := table[j:]
		row = row[:strings.Index(row, "</tr>")]
		for _, s := range []string{fmt.Sprintf("%.2f%%", 100*r.CTR.Rate), fmt.Sprintf(">%.0f<", r.Clicks), fmt.Sprintf(">%.0f<", r.Users)} {
			if !strings.Contains(row, s) {
				t.Errorf("variant %s: row lacks %q: %s", r.Variant, s, row)
			}
		}
		if r.Variant == "b" && !strings.Contains(row, ">&lt;0.0001<") && !strings.Contains(row, ">0.00") {
			t.Errorf("variant b: no p-value below 0.01 in %s", row)
		}
	}
	for _, s := range []string{`id="experiment-warning"`, "Fixed horizon", "(control)", `id="experiment-sources"`, "item_knn"} {
		if !strings.Contains(dom, s) {
			t.Errorf("rendered page lacks %q", s)
		}
	}
}
