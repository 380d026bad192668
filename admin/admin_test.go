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
	"github.com/recstream/recstream/internal/testopts"
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
	return serverAuth(t, withTrending, admin.UserAuth{Anonymous: true})
}

func serverAuth(t *testing.T, withTrending bool, auth admin.UserAuth) (*httptest.Server, *store.Store, *prometheus.Registry) {
	t.Helper()
	rs := redistest.Start(t)
	rdb := redis.NewClient(rs.Options())
	t.Cleanup(func() { _ = rdb.Close() })
	st := store.New(rdb, testopts.Store(func(o *store.Options) { o.Prefix = "t:" }))
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
	srv := admin.New(admin.Options{Store: st, Lag: lag, Gatherer: reg, Roles: []string{"ingest", "score"}, Auth: auth})
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

// request GETs url with a header and returns the status, the
// WWW-Authenticate header and the body.
func request(t *testing.T, url string, set func(*http.Request)) (int, string, string) {
	t.Helper()
	req, err := http.NewRequest(http.MethodGet, url, nil)
	if err != nil {
		t.Fatal(err)
	}
	if set != nil {
		set(req)
	}
	res, err := http.DefaultClient.Do(req)
	if err != nil {
		t.Fatal(err)
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, res.Header.Get("WWW-Authenticate"), string(b)
}

// A user's events and list are served only with the configured bearer
// token or basic credentials; the status itself stays open; with nothing
// configured the user routes answer 403.
func TestUserAuth(t *testing.T) {
	hs, _, _ := serverAuth(t, true, admin.UserAuth{Token: "t0ken", Username: "ops", Password: "s3cret"})
	bearer := func(tok string) func(*http.Request) {
		return func(r *http.Request) { r.Header.Set("Authorization", "Bearer "+tok) }
	}
	basic := func(u, p string) func(*http.Request) {
		return func(r *http.Request) { r.SetBasicAuth(u, p) }
	}
	api := hs.URL + "/api/v1/users/u1/recommendations"
	page := hs.URL + "/?user=u1"
	for _, c := range []struct {
		name, url string
		set       func(*http.Request)
		code      int
	}{
		{"api without credentials", api, nil, 401},
		{"api wrong token", api, bearer("nope"), 401},
		{"api token", api, bearer("t0ken"), 200},
		{"api wrong password", api, basic("ops", "nope"), 401},
		{"api token as password", api, basic("ops", "t0ken"), 401},
		{"api basic", api, basic("ops", "s3cret"), 200},
		{"lookup without credentials", page, nil, 401},
		{"lookup basic", page, basic("ops", "s3cret"), 200},
		{"status page", hs.URL + "/", nil, 200},
		{"status json", hs.URL + "/api/v1/status", nil, 200},
	} {
		code, challenge, body := request(t, c.url, c.set)
		if code != c.code {
			t.Errorf("%s: %d, want %d: %.200s", c.name, code, c.code, body)
		}
		if code == 401 && !strings.HasPrefix(challenge, "Basic ") {
			t.Errorf("%s: WWW-Authenticate %q, want Basic (a browser asks)", c.name, challenge)
		}
		if leaked := strings.Contains(body, "i7") || strings.Contains(body, "because you viewed"); leaked != (code == 200 && c.url != hs.URL+"/" && c.url != hs.URL+"/api/v1/status") {
			t.Errorf("%s: %d, list shown %v:\n%.300s", c.name, code, leaked, body)
		}
	}

	closed, _, _ := serverAuth(t, true, admin.UserAuth{})
	code, _, body := request(t, closed.URL+"/api/v1/users/u1/recommendations", nil)
	if code != 403 || !strings.Contains(body, "admin.token") {
		t.Errorf("nothing configured: %d %s, want 403 naming admin.token", code, body)
	}
	code, _, body = request(t, closed.URL+"/?user=u1", nil)
	if code != 403 || !strings.Contains(body, "user lookup is disabled") || strings.Contains(body, "i7") {
		t.Errorf("nothing configured, lookup: %d\n%.300s", code, body)
	}
}
