package admin

import (
	"math"
	"sort"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
)

// Counts is a labelled counter read from the registry, largest first.
type Counts []Count

// Count is one label value of a counter.
type Count struct {
	Label string  `json:"label"`
	Value float64 `json:"value"`
}

// Total sums the counts.
func (c Counts) Total() float64 {
	t := 0.0
	for _, x := range c {
		t += x.Value
	}
	return t
}

// Quantiles are percentiles estimated from a histogram's buckets.
type Quantiles struct {
	Count uint64  `json:"count"`
	Sum   float64 `json:"sum"`
	P50   float64 `json:"p50"`
	P90   float64 `json:"p90"`
	P99   float64 `json:"p99"`
}

// gathered indexes the registry's families by name.
type gathered map[string]*dto.MetricFamily

func gather(g prometheus.Gatherer) gathered {
	out := make(gathered)
	if g == nil {
		return out
	}
	fams, _ := g.Gather() // partial results are still useful on a status page
	for _, f := range fams {
		out[f.GetName()] = f
	}
	return out
}

// counts returns the values of a counter family by one label, without
// zeros, largest first.
func (g gathered) counts(name, label string) Counts {
	var out Counts
	f := g[name]
	if f == nil {
		return out
	}
	for _, m := range f.GetMetric() {
		v := m.GetCounter().GetValue()
		if v == 0 {
			continue
		}
		l := ""
		for _, lp := range m.GetLabel() {
			if lp.GetName() == label {
				l = lp.GetValue()
			}
		}
		out = append(out, Count{Label: l, Value: v})
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].Value != out[j].Value {
			return out[i].Value > out[j].Value
		}
		return out[i].Label < out[j].Label
	})
	return out
}

// counter returns the sum of a counter family.
func (g gathered) counter(name string) float64 {
	t := 0.0
	if f := g[name]; f != nil {
		for _, m := range f.GetMetric() {
			t += m.GetCounter().GetValue()
		}
	}
	return t
}

// quantiles estimates percentiles of an unlabelled histogram.
func (g gathered) quantiles(name string) Quantiles {
	f := g[name]
	if f == nil || len(f.GetMetric()) == 0 {
		return Quantiles{}
	}
	h := f.GetMetric()[0].GetHistogram()
	var bounds []float64
	var cum []uint64
	for _, b := range h.GetBucket() {
		bounds = append(bounds, b.GetUpperBound())
		cum = append(cum, b.GetCumulativeCount())
	}
	q := Quantiles{Count: h.GetSampleCount(), Sum: h.GetSampleSum()}
	q.P50 = BucketQuantile(0.50, bounds, cum, h.GetSampleCount())
	q.P90 = BucketQuantile(0.90, bounds, cum, h.GetSampleCount())
	q.P99 = BucketQuantile(0.99, bounds, cum, h.GetSampleCount())
	return q
}

// BucketQuantile estimates the q-quantile from cumulative bucket counts the
// way PromQL's histogram_quantile does: linear interpolation inside the
// bucket holding the rank; a rank beyond the last finite bound returns that
// bound. It returns NaN without observations.
func BucketQuantile(q float64, bounds []float64, cum []uint64, total uint64) float64 {
	if total == 0 || len(bounds) == 0 {
		return math.NaN()
	}
	rank := q * float64(total)
	lower, below := 0.0, uint64(0)
	for i, ub := range bounds {
		if math.IsInf(ub, 1) {
			break
		}
		if float64(cum[i]) >= rank {
			n := cum[i] - below
			if n == 0 {
				return ub
			}
			return lower + (ub-lower)*(rank-float64(below))/float64(n)
		}
		lower, below = ub, cum[i]
	}
	return lower
}
