package experiment_test

import (
	"context"
	"math"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"

	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/loadgen"
)

// countsFromTruth sums what a simulated experiment planted, per variant,
// from the per-user truth (a batch computation, independent of the
// counters' incremental sums).
func countsFromTruth(truth map[string]*loadgen.UserTruth, variants []string) []experiment.Counts {
	by := map[string]*experiment.Counts{}
	for _, v := range variants {
		by[v] = &experiment.Counts{Variant: v}
	}
	b2f := func(b bool) float64 {
		if b {
			return 1
		}
		return 0
	}
	for _, u := range truth {
		c := by[u.Variant]
		n, x := float64(u.Shown), float64(u.Clicks)
		c.Impressions += float64(u.Impressions)
		c.Shown += n
		c.Users++
		c.Clicks += x
		c.Carts += float64(u.Carts)
		c.Purchases += float64(u.Buys)
		c.Value += u.Value
		c.ClickUsers += b2f(u.Clicked)
		c.CartUsers += b2f(u.Carted)
		c.BuyUsers += b2f(u.Bought)
		c.N2 += n * n
		c.NX += n * x
		c.X2 += x * x
	}
	out := make([]experiment.Counts, len(variants))
	for i, v := range variants {
		out[i] = *by[v]
	}
	return out
}

func simulate(seed uint64, ctr []float64, events int) experiment.Report {
	x := loadgen.NewExperiment(loadgen.ExperimentOptions{Users: 1000, Items: 500, CTR: ctr, Seed: seed, Start: time.Date(2026, 1, 1, 0, 0, 0, 0, time.UTC), Step: time.Second})
	x.Events(events)
	return experiment.NewReport(countsFromTruth(x.Truth(), []string{"a", "b"}))
}

// The planted experiment: B's lists hold items users click twice as often
// as A's. After 20,000 events the report shows B's click-through rate
// about twice A's, with a p-value below 0.01.
func TestPlantedExperimentFindsTheDifference(t *testing.T) {
	r := simulate(1, []float64{0.05, 0.10}, 20000)
	a, b := r.Rows[0], r.Rows[1]
	ratio := b.CTR.Rate / a.CTR.Rate
	t.Logf("users %v / %v, shown %v / %v, CTR %.4f [%.4f, %.4f] / %.4f [%.4f, %.4f], ratio %.2f, diff %.4f [%.4f, %.4f], p %.3g; click users p %.3g, conversion p %.3g",
		a.Users, b.Users, a.Shown, b.Shown, a.CTR.Rate, a.CTR.Low, a.CTR.High, b.CTR.Rate, b.CTR.Low, b.CTR.High, ratio, b.CTR.Diff, b.CTR.DiffLow, b.CTR.DiffHigh, b.CTR.P, b.Clickers.P, b.Conversion.P)
	if r.Control != "a" || !a.Control || b.Control {
		t.Errorf("control %q", r.Control)
	}
	if ratio < 1.7 || ratio > 2.3 {
		t.Errorf("B's CTR is %.2f times A's, want about 2", ratio)
	}
	if !(b.CTR.P < 0.01) {
		t.Errorf("p-value %v, want below 0.01", b.CTR.P)
	}
	if !(b.CTR.DiffLow > 0) || !(a.CTR.Low < a.CTR.Rate && a.CTR.Rate < a.CTR.High) {
		t.Errorf("intervals: diff [%v, %v], A [%v, %v]", b.CTR.DiffLow, b.CTR.DiffHigh, a.CTR.Low, a.CTR.High)
	}
	if !math.IsNaN(a.CTR.P) {
		t.Errorf("the control has a p-value: %v", a.CTR.P)
	}
}

// With equal variants the tests' false-positive rate holds: p > 0.05 in
// at least 90 of 100 seeded runs (about 95 expected), for the
// click-through rate and for the share of users who click; and the 95%
// interval of A's rate covers the true 0.05 in at least 90 of them.
func TestEqualVariantsFalsePositiveRate(t *testing.T) {
	runs := 100
	if testing.Short() {
		runs = 30
	}
	ctrOK, usersOK, covered := 0, 0, 0
	for seed := 1; seed <= runs; seed++ {
		r := simulate(uint64(1000+seed), []float64{0.05, 0.05}, 20000)
		b := r.Rows[1]
		if b.CTR.P > 0.05 {
			ctrOK++
		}
		if b.Clickers.P > 0.05 {
			usersOK++
		}
		if a := r.Rows[0].CTR; a.Low <= 0.05 && 0.05 <= a.High {
			covered++
		}
	}
	t.Logf("%d runs: CTR p > 0.05 in %d, click users p > 0.05 in %d, A's interval covers 0.05 in %d", runs, ctrOK, usersOK, covered)
	min := runs * 9 / 10
	if ctrOK < min || usersOK < min || covered < min {
		t.Errorf("false-positive rate or coverage off: %d, %d, %d of %d", ctrOK, usersOK, covered, runs)
	}
}

// The ratio's standard error from the counters' sums equals the delta
// method computed user by user.
func TestRatioStandardErrorMatchesPerUser(t *testing.T) {
	users := []struct{ n, x float64 }{{10, 1}, {20, 0}, {5, 3}, {30, 2}, {10, 0}, {8, 1}}
	var c experiment.Counts
	c.Variant = "a"
	for _, u := range users {
		c.Users++
		c.Shown += u.n
		c.Clicks += u.x
		c.N2 += u.n * u.n
		c.NX += u.n * u.x
		c.X2 += u.x * u.x
	}
	r := c.Clicks / c.Shown
	ss := 0.0
	for _, u := range users {
		d := u.x - r*u.n
		ss += d * d
	}
	k := float64(len(users))
	se := math.Sqrt(ss*k/(k-1)) / c.Shown
	got := experiment.NewReport([]experiment.Counts{c}).Rows[0].CTR
	if math.Abs(got.Rate-r) > 1e-12 || math.Abs((got.High-got.Low)/2-experiment.Z*se) > 1e-12 {
		t.Errorf("rate %v interval [%v, %v]; want %v ± %v", got.Rate, got.Low, got.High, r, experiment.Z*se)
	}
}

// The two-proportion z-test against a textbook example: 120/1000 against
// 150/1000 gives z = 1.96..., p = 0.0497.
func TestTwoProportionP(t *testing.T) {
	p := experiment.TwoProportionP(150, 1000, 120, 1000)
	if math.Abs(p-0.0497) > 0.0005 {
		t.Errorf("p = %v, want 0.0497", p)
	}
	if p := experiment.TwoProportionP(10, 100, 10, 100); p != 1 {
		t.Errorf("equal proportions: p = %v", p)
	}
}

func TestFromFields(t *testing.T) {
	f := map[string]float64{
		"b|imp": 2, "b|shown": 20, "b|users": 2, "b|click": 3, "b|click|s|item_knn": 2, "b|click|p|1": 1, "b|shown|p|1": 2,
		"a|imp": 1, "|imp": 5, "b|click|l": 4, "b|value|l": 9.5, "c|imp": 1, "a|purchase_users": 1,
	}
	cs := experiment.FromFields(f, []string{"a", "b"})
	var names []string
	for _, c := range cs {
		names = append(names, c.Variant)
	}
	if strings.Join(names, ",") != "a,b,c," {
		t.Fatalf("variants %q", names)
	}
	b := cs[1]
	if b.Impressions != 2 || b.Shown != 20 || b.Clicks != 3 || b.ListClicks != 4 || b.ListValue != 9.5 || b.BySource["item_knn"].Clicks != 2 ||
		b.ByPosition["1"] != (experiment.Cell{Shown: 2, Clicks: 1}) || cs[0].BuyUsers != 1 || cs[3].Impressions != 5 {
		t.Errorf("parsed %+v", cs)
	}
}

func TestCollector(t *testing.T) {
	r := simulate(3, []float64{0.05, 0.10}, 5000)
	fields := map[string]float64{}
	for _, row := range r.Rows {
		v := row.Variant + "|"
		for k, x := range map[string]float64{"shown": row.Shown, "users": row.Users, "click": row.Clicks, "n2": row.N2, "nx": row.NX, "x2": row.X2, "click_users": row.ClickUsers, "purchase_users": row.BuyUsers} {
			fields[v+k] = x
		}
	}
	c := experiment.NewCollector(func(context.Context) (map[string]float64, error) { return fields, nil }, []string{"a", "b"})
	reg := prometheus.NewRegistry()
	reg.MustRegister(c)
	if n, err := testutil.GatherAndCount(reg, "recstream_experiment_p_value"); err != nil || n != 3 {
		t.Errorf("p-value series: %d, %v (want b's three)", n, err)
	}
	if n, _ := testutil.GatherAndCount(reg, "recstream_experiment_rate"); n != 6 {
		t.Errorf("rate series: %d", n)
	}
	// The counters, every configured variant and "none" from zero.
	if n, _ := testutil.GatherAndCount(reg, "recstream_experiment_impressions_total"); n != 3 {
		t.Errorf("impression series: %d", n)
	}
	if n, _ := testutil.GatherAndCount(reg, "recstream_experiment_attributed_total"); n != 18 {
		t.Errorf("attributed series: %d", n)
	}
	mfs, _ := reg.Gather()
	for _, mf := range mfs {
		if mf.GetName() != "recstream_experiment_p_value" {
			continue
		}
		for _, m := range mf.GetMetric() {
			if m.GetLabel()[0].GetValue() == "ctr" && math.Abs(m.GetGauge().GetValue()-r.Rows[1].CTR.P) > 1e-15 {
				t.Errorf("ctr p-value %v, report %v", m.GetGauge().GetValue(), r.Rows[1].CTR.P)
			}
		}
	}
}
