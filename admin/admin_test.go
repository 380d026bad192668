package admin_test

import (
	"context"
	"encoding/json"
	"io"
	"math"
	"net/http"
	"net/http/httptest"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/admin"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

func TestBucketQuantile(t *testing.T) {
	inf := math.Inf(1)
	tests := []struct {
		name   string
		q      float64
		bounds []float64
		cum    []uint64
		want   float64
	}{
		// 100 observations spread evenly in (0.1, 0.2]: the median is 0.15.
		{"middle of a bucket", 0.5, []float64{0.1, 0.2, inf}, []uint64{0, 100, 100}, 0.15},
		// 50 in (0, 0.1], 50 in (0.1, 0.2]: p99 at 98% of the second bucket.
		{"upper bucket", 0.99, []float64{0.1, 0.2, inf}, []uint64{50, 100, 100}, 0.198},
		{"first bucket from zero", 0.5, []float64{0.1, 0.2, inf}, []uint64{100, 100, 100}, 0.05},
		{"rank in +Inf returns the last finite bound", 0.99, []float64{0.1, 0.2, inf}, []uint64{10, 20, 100}, 0.2},
	}
	for _, tt := range tests {
		got := admin.BucketQuantile(tt.q, tt.bounds, tt.cum, tt.cum[len(tt.cum)-1])
		if math.Abs(got-tt.want) > 1e-9 {
			t.Errorf("%s: got %v, want %v", tt.name, got, tt.want)
		}
	}
	if !math.IsNaN(admin.BucketQuantile(0.5, []float64{1, inf}, []uint64{0, 0}, 0)) {
		t.Error("no observations: want NaN")
	}
}

// TestBucketQuantileAgainstObservations compares the estimate with the true
// quantile of the observations: within the width of the bucket holding it.
func TestBucketQuantileAgainstObservations(t *testing.T) {
	buckets := []float64{.01, .025, .05, .1, .2, .3, .5, .75, 1, 2, 5}
	h := prometheus.NewHistogram(prometheus.HistogramOpts{Name: "x", Buckets: buckets})
	var obs []float64
	for i := 0; i < 1000; i++ {
		v := 0.3 * float64(i) / 1000 // uniform on [0, 0.3)
		obs = append(obs, v)
		h.Observe(v)
	}
	reg := prometheus.NewRegistry()
	reg.MustRegister(h)
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	hist := fams[0].GetMetric()[0].GetHistogram()
	var bounds []float64
	var cum []uint64
	for _, b := range hist.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		cum = append(cum, b.GetCumulativeCount())
	}
	bounds, cum = append(bounds, math.Inf(1)), append(cum, hist.GetSampleCount())
	for _, q := range []float64{0.5, 0.9, 0.99} {
		got := admin.BucketQuantile(q, bounds, cum, hist.GetSampleCount())
		want := obs[int(q*float64(len(obs)))-1]
		if math.Abs(got-want) > 0.1 { // widest bucket around 0.15..0.3 is 0.1
			t.Errorf("q%.2f: estimate %v, true %v", q, got, want)
		}
	}
}

type fixedLag consumer.LagSnapshot

func (f fixedLag) Snapshot() consumer.LagSnapshot { return consumer.LagSnapshot(f) }

// server serves admin over a real Redis holding one user's events and list
// and a trending list.
func server(t *testing.T, withTrending bool) (*httptest.Server, *store.Store, *prometheus.Registry) {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(rs.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, store.Options{Prefix: "t:"})
	ctx := context.Background()
	if err := st.LoadScripts(ctx); err != nil {
		t.Fatal(err)
	}
	now := time.Now().UnixMilli()
	ops := []store.Op{
		{Offset: 0, User: "u1", Item: "i1", Type: event.Browse, TS: now - 2000},
		{Offset: 1, User: "u1", Item: "i2", Type: event.Purchase, TS: now - 1000},
	}
	if _, err := st.Apply(ctx, 0, ops); err != nil {
		t.Fatal(err)
	}
	lists := []store.List{{User: "u1", GeneratedAt: now, Model: "hybrid-v1", EventTS: now - 1000, Items: []store.ListItem{
		{Item: "i7", Score: 0.9, Source: "item_knn", Reason: "because you viewed i1"},
		{Item: "i8", Score: 0.4, Source: "trending", Reason: "trending now"},
	}}}
	if withTrending {
		lists = append(lists, store.List{GeneratedAt: now, Model: "trending", Items: []store.ListItem{{Item: "i9", Score: 3, Source: "trending", Reason: "trending now"}}})
	}
	if err := st.WriteLists(ctx, lists, time.Hour); err != nil {
		t.Fatal(err)
	}
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	m.Invalid.WithLabelValues(string(event.ReasonMalformed)).Add(3)
	m.Events.WithLabelValues("click").Add(42)
	for _, v := range []float64{0.02, 0.04, 0.08, 0.15} {
		m.Freshness.Observe(v)
	}
	lag := fixedLag{At: time.Now(), Partitions: []consumer.PartitionStatus{
		{Group: "recstream-ingest", Topic: "events", Partition: 3, High: 120, Committed: 100, Lag: 20, LagSeconds: 4.5, Status: consumer.StatusStalled},
	}}
	srv := admin.New(admin.Options{Store: st, Lag: lag, Gatherer: reg, Roles: []string{"ingest", "score"}})
	mux := http.NewServeMux()
	srv.Register(mux)
	hs := httptest.NewServer(mux)
	t.Cleanup(hs.Close)
	return hs, st, reg
}

func get(t *testing.T, url string) (int, string) {
	t.Helper()
	res, err := http.Get(url)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, err := io.ReadAll(res.Body)
	if err != nil {
		t.Fatal(err)
	}
	return res.StatusCode, string(b)
}

func TestRecommendationsEndpoint(t *testing.T) {
	hs, _, _ := server(t, true)
	code, body := get(t, hs.URL+"/api/v1/users/u1/recommendations")
	if code != http.StatusOK {
		t.Fatalf("u1: %d %s", code, body)
	}
	var r admin.Recommendations
	if err := json.Unmarshal([]byte(body), &r); err != nil {
		t.Fatal(err)
	}
	if r.Source != "user" || r.List.User != "u1" || len(r.List.Items) != 2 || r.List.Items[0].Item != "i7" || r.List.Items[0].Reason != "because you viewed i1" {
		t.Errorf("u1: %+v", r)
	}
	code, body = get(t, hs.URL+"/api/v1/users/nobody/recommendations")
	if err := json.Unmarshal([]byte(body), &r); err != nil || code != http.StatusOK {
		t.Fatalf("fallback: %d %s %v", code, body, err)
	}
	if r.Source != "trending" || len(r.List.Items) != 1 || r.List.Items[0].Item != "i9" {
		t.Errorf("fallback: %+v", r)
	}
	if code, body := get(t, hs.URL+"/api/v1/users/a%7Bb/recommendations"); code != http.StatusBadRequest {
		t.Errorf("bad id: %d %s", code, body)
	}
}

func TestRecommendationsNotFound(t *testing.T) {
	hs, _, _ := server(t, false)
	if code, body := get(t, hs.URL+"/api/v1/users/nobody/recommendations"); code != http.StatusNotFound {
		t.Errorf("no list, no trending: %d %s", code, body)
	}
}

func TestStatusPage(t *testing.T) {
	hs, _, _ := server(t, true)
	code, body := get(t, hs.URL+"/?user=u1")
	if code != http.StatusOK {
		t.Fatalf("%d %s", code, body)
	}
	for _, want := range []string{
		"because you viewed i1", "i7", // the list with reasons
		"purchase", "i2", // recent events
		"malformed",                // DLQ by reason
		"stalled", ">20<", "4.5 s", // the partition row
		"hybrid-v1",
	} {
		if !strings.Contains(body, want) {
			t.Errorf("page lacks %q", want)
		}
	}
	if strings.Contains(body, "<script") || strings.Contains(body, "http://") || strings.Contains(body, "https://") {
		t.Error("page refers to scripts or external assets")
	}
	_, body = get(t, hs.URL+"/?user=%7Bx%7D")
	if !strings.Contains(body, "not a valid user id") {
		t.Error("invalid id not reported")
	}
	code, body = get(t, hs.URL+"/api/v1/status")
	var st admin.Status
	if err := json.Unmarshal([]byte(body), &st); err != nil || code != 200 {
		t.Fatalf("status: %d %v", code, err)
	}
	if st.Freshness.Count != 4 || st.Freshness.P50 <= 0.025 || st.Freshness.P50 > 0.05 {
		t.Errorf("freshness %+v", st.Freshness)
	}
	if st.Invalid.Total() != 3 || st.Events.Total() != 42 || len(st.Partitions) != 1 {
		t.Errorf("status %+v", st)
	}
}
