package experiment

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the counters and the report, read from Redis at each
// scrape (one HGETALL): every process exports the same values, exact
// across processes and replays (aggregate with max, not sum).
type Collector struct {
	read        func(context.Context) (map[string]float64, error)
	variants    []string
	impressions *prometheus.Desc
	shown       *prometheus.Desc
	attributed  *prometheus.Desc
	value       *prometheus.Desc
	rate        *prometheus.Desc
	low         *prometheus.Desc
	high        *prometheus.Desc
	diff        *prometheus.Desc
	p           *prometheus.Desc
}

// NewCollector returns a collector reading the counters with read;
// variants are the configured variants (the first is the control).
func NewCollector(read func(context.Context) (map[string]float64, error), variants []string) *Collector {
	l := []string{"variant", "metric"}
	return &Collector{
		read: read, variants: variants,
		impressions: prometheus.NewDesc("recstream_experiment_impressions_total", "Impression events counted for the experiment, by A/B variant (none: lists without a variant).", []string{"variant"}, nil),
		shown:       prometheus.NewDesc("recstream_experiment_shown_items_total", "Items shown in counted impressions, by A/B variant.", []string{"variant"}, nil),
		attributed:  prometheus.NewDesc("recstream_experiment_attributed_total", "Clicks, carts and purchases attributed to a shown item (via impression) or to the user's current list (via list), by A/B variant.", []string{"variant", "type", "via"}, nil),
		value:       prometheus.NewDesc("recstream_experiment_purchase_value_total", "Value of attributed purchases, by A/B variant and via.", []string{"variant", "via"}, nil),
		rate:        prometheus.NewDesc("recstream_experiment_rate", "Experiment rate by A/B variant: ctr (attributed clicks per item shown), clickers and conversion (shares of exposed users with an attributed click, purchase).", l, nil),
		low:         prometheus.NewDesc("recstream_experiment_rate_ci_low", "Lower end of the rate's 95% confidence interval.", l, nil),
		high:        prometheus.NewDesc("recstream_experiment_rate_ci_high", "Upper end of the rate's 95% confidence interval.", l, nil),
		diff:        prometheus.NewDesc("recstream_experiment_diff", "Rate minus the control variant's rate.", l, nil),
		p:           prometheus.NewDesc("recstream_experiment_p_value", "Two-sided p-value of the difference to the control (fixed horizon: read it once, at the planned end).", l, nil),
	}
}

// VariantLabel is the metric label of variant v: "none" for lists
// without a variant.
func VariantLabel(v string) string {
	if v == "" {
		return "none"
	}
	return v
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.impressions, c.shown, c.attributed, c.value, c.rate, c.low, c.high, c.diff, c.p} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Without an answer from Redis
// it exports nothing.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 250*time.Millisecond)
	defer cancel()
	fields, err := c.read(ctx)
	if err != nil {
		return
	}
	counts := FromFields(fields, append(append([]string(nil), c.variants...), ""))
	for _, k := range counts {
		v := VariantLabel(k.Variant)
		counter := func(d *prometheus.Desc, x float64, l ...string) {
			ch <- prometheus.MustNewConstMetric(d, prometheus.CounterValue, x, append([]string{v}, l...)...)
		}
		counter(c.impressions, k.Impressions)
		counter(c.shown, k.Shown)
		for _, a := range []struct {
			typ      string
			imp, lst float64
		}{{"click", k.Clicks, k.ListClicks}, {"add_to_cart", k.Carts, k.ListCarts}, {"purchase", k.Purchases, k.ListPurchases}} {
			counter(c.attributed, a.imp, a.typ, "impression")
			counter(c.attributed, a.lst, a.typ, "list")
		}
		counter(c.value, k.Value, "impression")
		counter(c.value, k.ListValue, "list")
	}
	r := NewReport(FromFields(fields, c.variants))
	for _, row := range r.Rows {
		v := VariantLabel(row.Variant)
		for _, m := range []struct {
			name string
			e    Estimate
		}{{"ctr", row.CTR}, {"clickers", row.Clickers}, {"conversion", row.Conversion}} {
			put := func(d *prometheus.Desc, x float64) {
				if !math.IsNaN(x) {
					ch <- prometheus.MustNewConstMetric(d, prometheus.GaugeValue, x, v, m.name)
				}
			}
			put(c.rate, m.e.Rate)
			put(c.low, m.e.Low)
			put(c.high, m.e.High)
			if !row.Control {
				put(c.diff, m.e.Diff)
				put(c.p, m.e.P)
			}
		}
	}
}
