// Package experiment turns the experiment counters that attribution keeps
// in Redis (store/experiment.go) into the A/B report: per variant its
// rates with 95% confidence intervals, the difference to the control (the
// first configured variant) and the p-value of the test of that
// difference. The status page, `recstream experiment` and the metrics the
// Grafana dashboard charts all show this report.
//
// # Statistics
//
// Click-through rate (CTR) is attributed clicks per item shown. Items
// shown to one user are not independent, so the unit is the user: the
// variance of the ratio Σx/Σn comes from the per-user sums (the delta
// method for ratio metrics, Deng et al. 2018), from Σn², Σn·x and Σx²
// over users, which the counters keep. Click users and conversion are
// the shares of exposed users with at least one attributed click and
// purchase (clickers, conversion); their difference is tested with the two-proportion z-test
// (pooled standard error), their intervals are Wald intervals.
//
// # Assumptions
//
// Users are independent and each sees one variant; the sample size is
// fixed before the test starts (a fixed horizon). A p-value read again
// and again while data arrives, stopping the first time it is below 0.05,
// is wrong far more often than 5% of the time: decide the number of users
// (or the duration) in advance and read the p-value once, at the end.
//
// # Metrics
//
// Collector exports, read from Redis at each scrape, the counters by
// variant (recstream_experiment_impressions_total,
// recstream_experiment_shown_items_total,
// recstream_experiment_attributed_total{type,via},
// recstream_experiment_purchase_value_total{via}; every configured variant
// and "none" from zero) and the report as gauges, by variant and metric
// (ctr, clickers, conversion): recstream_experiment_rate,
// recstream_experiment_rate_ci_low, recstream_experiment_rate_ci_high,
// recstream_experiment_diff (to the control) and
// recstream_experiment_p_value (absent for the control).
package experiment

import (
	"encoding/json"
	"math"
	"sort"
	"strconv"
	"strings"
)

// Counts are one variant's counters.
type Counts struct {
	Variant     string  `json:"variant"` // "" for lists without a variant
	Impressions float64 `json:"impressions"`
	Shown       float64 `json:"shown"`
	Users       float64 `json:"users"` // exposed users
	Clicks      float64 `json:"clicks"`
	Carts       float64 `json:"carts"`
	Purchases   float64 `json:"purchases"`
	Value       float64 `json:"value"`
	ClickUsers  float64 `json:"click_users"`
	CartUsers   float64 `json:"cart_users"`
	BuyUsers    float64 `json:"purchase_users"`
	N2          float64 `json:"-"` // Σ over users of n², n items shown
	NX          float64 `json:"-"` // Σ n·x, x attributed clicks
	X2          float64 `json:"-"` // Σ x²
	// Attributed through the user's current list (no impressions).
	ListClicks    float64 `json:"list_clicks"`
	ListCarts     float64 `json:"list_carts"`
	ListPurchases float64 `json:"list_purchases"`
	ListValue     float64 `json:"list_value"`
	// Per source and position (1-based) of the item shown: shown and
	// clicked.
	BySource   map[string]Cell `json:"by_source,omitempty"`
	ByPosition map[string]Cell `json:"by_position,omitempty"`
}

// Cell is items shown and attributed clicks, carts and purchases of one
// source or position.
type Cell struct {
	Shown     float64 `json:"shown"`
	Clicks    float64 `json:"clicks"`
	Carts     float64 `json:"carts"`
	Purchases float64 `json:"purchases"`
}

// CTR returns Clicks/Shown (NaN without items shown).
func (c Cell) CTR() float64 { return div(c.Clicks, c.Shown) }

// Keys returns the keys of a by-source or by-position map, positions in
// numeric order.
func Keys(m map[string]Cell) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Slice(out, func(i, j int) bool {
		a, ea := strconv.Atoi(out[i])
		b, eb := strconv.Atoi(out[j])
		if ea == nil && eb == nil {
			return a < b
		}
		return out[i] < out[j]
	})
	return out
}

// FromFields groups the counter fields (<variant>|<name>[|s|<source>|p|
// <position>]) by variant: the variants named first in their order (the
// first is the control), then any other the counters hold, then "" (lists
// without a variant).
func FromFields(fields map[string]float64, variants []string) []Counts {
	by := map[string]*Counts{}
	get := func(v string) *Counts {
		c := by[v]
		if c == nil {
			c = &Counts{Variant: v, BySource: map[string]Cell{}, ByPosition: map[string]Cell{}}
			by[v] = c
		}
		return c
	}
	for _, v := range variants {
		get(v)
	}
	for f, x := range fields {
		v, rest, ok := strings.Cut(f, "|")
		if !ok {
			continue
		}
		c := get(v)
		parts := strings.Split(rest, "|")
		name := parts[0]
		if len(parts) == 3 && (parts[1] == "s" || parts[1] == "p") {
			m := c.BySource
			if parts[1] == "p" {
				m = c.ByPosition
			}
			cell := m[parts[2]]
			switch name {
			case "shown":
				cell.Shown += x
			case "click":
				cell.Clicks += x
			case "add_to_cart":
				cell.Carts += x
			case "purchase":
				cell.Purchases += x
			}
			m[parts[2]] = cell
			continue
		}
		if len(parts) == 2 && parts[1] == "l" {
			switch name {
			case "click":
				c.ListClicks += x
			case "add_to_cart":
				c.ListCarts += x
			case "purchase":
				c.ListPurchases += x
			case "value":
				c.ListValue += x
			}
			continue
		}
		if len(parts) != 1 {
			continue
		}
		switch name {
		case "imp":
			c.Impressions += x
		case "shown":
			c.Shown += x
		case "users":
			c.Users += x
		case "click":
			c.Clicks += x
		case "add_to_cart":
			c.Carts += x
		case "purchase":
			c.Purchases += x
		case "value":
			c.Value += x
		case "click_users":
			c.ClickUsers += x
		case "add_to_cart_users":
			c.CartUsers += x
		case "purchase_users":
			c.BuyUsers += x
		case "n2":
			c.N2 += x
		case "nx":
			c.NX += x
		case "x2":
			c.X2 += x
		}
	}
	out := make([]Counts, 0, len(by))
	named := map[string]bool{}
	for _, v := range variants {
		out = append(out, *by[v])
		named[v] = true
	}
	var others []string
	for v := range by {
		if !named[v] && v != "" {
			others = append(others, v)
		}
	}
	sort.Strings(others)
	for _, v := range others {
		out = append(out, *by[v])
	}
	if c, ok := by[""]; ok && !named[""] {
		out = append(out, *c)
	}
	return out
}

// Z is the two-sided 95% normal quantile.
const Z = 1.959963984540054

// Estimate is one rate of one variant, its 95% confidence interval and,
// for variants other than the control, the difference to the control with
// its interval and the test's p-value (NaN for the control or when the
// rate is undefined).
type Estimate struct {
	Rate     float64 `json:"rate"`
	Low      float64 `json:"ci_low"`
	High     float64 `json:"ci_high"`
	Diff     float64 `json:"diff"`
	DiffLow  float64 `json:"diff_ci_low"`
	DiffHigh float64 `json:"diff_ci_high"`
	P        float64 `json:"p_value"`
	se       float64
	n        float64
	x        float64
}

// Row is one variant of the report.
type Row struct {
	Counts
	Control    bool     `json:"control"`
	CTR        Estimate `json:"ctr"`        // clicks per item shown
	Clickers   Estimate `json:"clickers"`   // share of exposed users with a click
	Conversion Estimate `json:"conversion"` // exposed users with a purchase
	// Point estimates (Rate only).
	CartRate     Estimate `json:"cart_rate"`      // carts per item shown
	PurchaseRate Estimate `json:"purchase_rate"`  // purchases per item shown
	ValuePerUser Estimate `json:"value_per_user"` // purchase value per exposed user
}

// Report is the experiment table.
type Report struct {
	Control     string   `json:"control"`
	Rows        []Row    `json:"variants"`
	Assumptions []string `json:"assumptions"`
}

// Assumptions are what the tests assume, shown with every report.
var Assumptions = []string{
	"Users are independent and each sees one variant; CTR's interval counts users, not items, as the units.",
	"Fixed horizon: decide the number of users (or the duration) before the test starts and read the p-value once, at the end. Stopping the first time a p-value that is read again and again dips below 0.05 finds a difference far more often than 5% of the time when there is none.",
	"A p-value below 0.05 says the difference is unlikely to be chance alone; the interval of the difference says how large it plausibly is.",
}

// NewReport computes the report of counts; the first row is the control.
// Rows of variant "" (lists without a variant, such as the trending list)
// get rates but no comparison.
func NewReport(counts []Counts) Report {
	r := Report{Assumptions: Assumptions}
	for i, c := range counts {
		row := Row{Counts: c, Control: i == 0}
		row.CTR = ratio(c.Clicks, c.Shown, c.Users, c.X2, c.NX, c.N2)
		row.Clickers = proportion(c.ClickUsers, c.Users)
		row.Conversion = proportion(c.BuyUsers, c.Users)
		row.CartRate = point(div(c.Carts, c.Shown))
		row.PurchaseRate = point(div(c.Purchases, c.Shown))
		row.ValuePerUser = point(div(c.Value, c.Users))
		if i == 0 {
			r.Control = c.Variant
		} else if c.Variant != "" {
			ctl := r.Rows[0]
			row.CTR.compareWald(ctl.CTR)
			row.Clickers.compareProportions(ctl.Clickers)
			row.Conversion.compareProportions(ctl.Conversion)
		}
		r.Rows = append(r.Rows, row)
	}
	return r
}

func div(a, b float64) float64 {
	if b <= 0 {
		return math.NaN()
	}
	return a / b
}

func point(x float64) Estimate {
	e := nan()
	e.Rate = x
	return e
}

// MarshalJSON writes NaN (undefined) numbers as null.
func (e Estimate) MarshalJSON() ([]byte, error) {
	f := func(x float64) *float64 {
		if math.IsNaN(x) || math.IsInf(x, 0) {
			return nil
		}
		return &x
	}
	return json.Marshal(struct {
		Rate     *float64 `json:"rate"`
		Low      *float64 `json:"ci_low"`
		High     *float64 `json:"ci_high"`
		Diff     *float64 `json:"diff"`
		DiffLow  *float64 `json:"diff_ci_low"`
		DiffHigh *float64 `json:"diff_ci_high"`
		P        *float64 `json:"p_value"`
	}{f(e.Rate), f(e.Low), f(e.High), f(e.Diff), f(e.DiffLow), f(e.DiffHigh), f(e.P)})
}

func nan() Estimate {
	n := math.NaN()
	return Estimate{Rate: n, Low: n, High: n, Diff: n, DiffLow: n, DiffHigh: n, P: n, se: n}
}

// ratio estimates X/N from per-user sums (users units; X2 = Σx², NX =
// Σn·x, N2 = Σn²): Var ≈ Σ(x − r·n)² / N² · U/(U−1).
func ratio(x, n, users, x2, nx, n2 float64) Estimate {
	e := nan()
	if n <= 0 || users < 2 {
		return e
	}
	r := x / n
	ss := x2 - 2*r*nx + r*r*n2
	if ss < 0 {
		ss = 0
	}
	se := math.Sqrt(ss*users/(users-1)) / n
	e.Rate, e.se, e.n, e.x = r, se, n, x
	e.Low, e.High = r-Z*se, r+Z*se
	return e
}

// proportion estimates x/n with a Wald interval.
func proportion(x, n float64) Estimate {
	e := nan()
	if n <= 0 {
		return e
	}
	p := x / n
	e.Rate, e.n, e.x = p, n, x
	e.se = math.Sqrt(p * (1 - p) / n)
	e.Low, e.High = math.Max(0, p-Z*e.se), math.Min(1, p+Z*e.se)
	return e
}

// compareWald sets the difference to ctl with a Wald test of it.
func (e *Estimate) compareWald(ctl Estimate) {
	if se, ok := e.diffTo(ctl); ok {
		e.P = pValue(e.Diff, se)
	}
}

// diffTo sets the difference to ctl with its 95% interval and returns the
// difference's unpooled standard error; false when either rate is unknown.
func (e *Estimate) diffTo(ctl Estimate) (float64, bool) {
	if math.IsNaN(e.Rate) || math.IsNaN(ctl.Rate) {
		return 0, false
	}
	e.Diff = e.Rate - ctl.Rate
	se := math.Sqrt(e.se*e.se + ctl.se*ctl.se)
	e.DiffLow, e.DiffHigh = e.Diff-Z*se, e.Diff+Z*se
	return se, true
}

// compareProportions sets the difference to ctl and the two-proportion
// z-test's p-value (pooled standard error).
func (e *Estimate) compareProportions(ctl Estimate) {
	if _, ok := e.diffTo(ctl); !ok {
		return
	}
	pool := (e.x + ctl.x) / (e.n + ctl.n)
	e.P = pValue(e.Diff, math.Sqrt(pool*(1-pool)*(1/e.n+1/ctl.n)))
}

// TwoProportionP is the two-sided p-value of the two-proportion z-test of
// x1/n1 against x2/n2 (pooled standard error).
func TwoProportionP(x1, n1, x2, n2 float64) float64 {
	a, b := proportion(x1, n1), proportion(x2, n2)
	a.compareProportions(b)
	return a.P
}

// pValue is the two-sided normal p-value of d with standard error se.
func pValue(d, se float64) float64 {
	if se <= 0 {
		if d == 0 {
			return 1
		}
		return 0
	}
	return math.Erfc(math.Abs(d/se) / math.Sqrt2)
}
