package experiment

import (
	"context"
	"math"
	"time"

	"github.com/prometheus/client_golang/prometheus"
)

// Collector exports the report as gauges, computed from the counters at
// each scrape (one read).
type Collector struct {
	read     func(context.Context) (map[string]float64, error)
	variants []string
	rate     *prometheus.Desc
	low      *prometheus.Desc
	high     *prometheus.Desc
	diff     *prometheus.Desc
	p        *prometheus.Desc
}

// NewCollector returns a collector reading the counters with read;
// variants are the configured variants (the first is the control).
func NewCollector(read func(context.Context) (map[string]float64, error), variants []string) *Collector {
	l := []string{"variant", "metric"}
	return &Collector{
		read: read, variants: variants,
		rate: prometheus.NewDesc("recstream_experiment_rate", "Experiment rate by A/B variant: ctr (attributed clicks per item shown), clickers and conversion (shares of exposed users with an attributed click, purchase).", l, nil),
		low:  prometheus.NewDesc("recstream_experiment_rate_ci_low", "Lower end of the rate's 95% confidence interval.", l, nil),
		high: prometheus.NewDesc("recstream_experiment_rate_ci_high", "Upper end of the rate's 95% confidence interval.", l, nil),
		diff: prometheus.NewDesc("recstream_experiment_diff", "Rate minus the control variant's rate.", l, nil),
		p:    prometheus.NewDesc("recstream_experiment_p_value", "Two-sided p-value of the difference to the control (fixed horizon: read it once, at the planned end).", l, nil),
	}
}

// Describe implements prometheus.Collector.
func (c *Collector) Describe(ch chan<- *prometheus.Desc) {
	for _, d := range []*prometheus.Desc{c.rate, c.low, c.high, c.diff, c.p} {
		ch <- d
	}
}

// Collect implements prometheus.Collector. Without an answer from Redis
// it exports nothing.
func (c *Collector) Collect(ch chan<- prometheus.Metric) {
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	fields, err := c.read(ctx)
	if err != nil {
		return
	}
	r := NewReport(FromFields(fields, c.variants))
	for _, row := range r.Rows {
		v := row.Variant
		if v == "" {
			v = "none"
		}
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
