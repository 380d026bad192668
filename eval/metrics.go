package eval

import (
	"fmt"
	"math"
	"slices"
	"strconv"
	"strings"
)

// Rank returns the 1-based rank of a target score among others with ties
// counted against the target: 1 + the number of others scoring >= target.
// NaN scores count as -Inf, so a target the model cannot score ranks after
// every candidate.
func Rank(target float64, others []float64) int {
	if math.IsNaN(target) {
		target = math.Inf(-1)
	}
	r := 1
	for _, s := range others {
		if math.IsNaN(s) {
			s = math.Inf(-1)
		}
		if s >= target {
			r++
		}
	}
	return r
}

// HitRate is 1 when the single relevant item is within the top k (1 <= rank
// <= k), else 0. A rank <= 0 means "not found".
func HitRate(rank, k int) float64 {
	if rank >= 1 && rank <= k {
		return 1
	}
	return 0
}

// NDCG is the normalised discounted cumulative gain at k of a single relevant
// item: 1/log2(rank+1) within the top k, else 0 (the ideal DCG is 1).
func NDCG(rank, k int) float64 {
	if rank >= 1 && rank <= k {
		return 1 / math.Log2(float64(rank)+1)
	}
	return 0
}

// Precision at k of a single relevant item: HitRate/k.
func Precision(rank, k int) float64 { return HitRate(rank, k) / float64(k) }

// Recall at k of a single relevant item: equal to HitRate.
func Recall(rank, k int) float64 { return HitRate(rank, k) }

// ReciprocalRank is 1/rank (untruncated), 0 for rank <= 0.
func ReciprocalRank(rank int) float64 {
	if rank >= 1 {
		return 1 / float64(rank)
	}
	return 0
}

// Metric key names. Keys with a cutoff are written "<name>@<k>", e.g. "hr@10".
const (
	MetricHR             = "hr"
	MetricNDCG           = "ndcg"
	MetricPrecision      = "precision"
	MetricRecall         = "recall"
	MetricMRR            = "mrr"
	MetricCoverage       = "coverage"
	MetricPopularity     = "popularity"
	MetricPopularityNorm = "popularity_norm"
)

// metricOrder is the display order of metric families.
var metricOrder = []string{
	MetricHR, MetricNDCG, MetricPrecision, MetricRecall, MetricMRR,
	MetricCoverage, MetricPopularity, MetricPopularityNorm,
}

// MetricKey returns the key of a metric at cutoff k ("hr@10"); k <= 0 gives
// the bare name ("mrr").
func MetricKey(name string, k int) string {
	if k <= 0 {
		return name
	}
	return name + "@" + strconv.Itoa(k)
}

// splitKey splits "hr@10" into ("hr", 10); "mrr" gives ("mrr", 0).
func splitKey(key string) (string, int) {
	name, ks, ok := strings.Cut(key, "@")
	if !ok {
		return key, 0
	}
	k, err := strconv.Atoi(ks)
	if err != nil {
		return key, 0
	}
	return name, k
}

// sortMetricKeys orders keys by family (hr, ndcg, precision, recall, mrr,
// coverage, popularity, popularity_norm, then others by name) and cutoff.
func sortMetricKeys(keys []string) {
	fam := func(name string) int {
		if i := slices.Index(metricOrder, name); i >= 0 {
			return i
		}
		return len(metricOrder)
	}
	slices.SortFunc(keys, func(a, b string) int {
		an, ak := splitKey(a)
		bn, bk := splitKey(b)
		if fa, fb := fam(an), fam(bn); fa != fb {
			return fa - fb
		}
		if an != bn {
			return strings.Compare(an, bn)
		}
		return ak - bk
	})
}

// normKs returns sorted, de-duplicated positive cutoffs, {10} when empty.
func normKs(ks []int) ([]int, error) {
	if len(ks) == 0 {
		return []int{10}, nil
	}
	out := slices.Clone(ks)
	for _, k := range out {
		if k <= 0 {
			return nil, fmt.Errorf("cutoff %d: want k >= 1", k)
		}
	}
	slices.Sort(out)
	return slices.Compact(out), nil
}

// accumulator sums per-case metrics at a list of cutoffs.
type accumulator struct {
	ks    []int
	n     int
	hr    []float64
	ndcg  []float64
	mrr   float64
	lists int
	recs  []map[string]struct{}
	pop   []float64
	popN  []float64
	popC  []int
}

func newAccumulator(ks []int) *accumulator {
	a := &accumulator{
		ks: ks, hr: make([]float64, len(ks)), ndcg: make([]float64, len(ks)),
		recs: make([]map[string]struct{}, len(ks)),
		pop:  make([]float64, len(ks)), popN: make([]float64, len(ks)), popC: make([]int, len(ks)),
	}
	for i := range a.recs {
		a.recs[i] = map[string]struct{}{}
	}
	return a
}

// addRank records one case; rank <= 0 is a miss.
func (a *accumulator) addRank(rank int) {
	a.n++
	for i, k := range a.ks {
		a.hr[i] += HitRate(rank, k)
		a.ndcg[i] += NDCG(rank, k)
	}
	a.mrr += ReciprocalRank(rank)
}

// addList records one top-K list; pop gives an item's popularity and maxPop
// the largest popularity at that time (for the normalised mean).
func (a *accumulator) addList(list []string, pop func(string) float64, maxPop float64) {
	a.lists++
	for i, k := range a.ks {
		for _, it := range list[:min(k, len(list))] {
			a.recs[i][it] = struct{}{}
			p := pop(it)
			a.pop[i] += p
			if maxPop > 0 {
				a.popN[i] += p / maxPop
			}
			a.popC[i]++
		}
	}
}

// metrics returns the means; catalogueSize is the denominator of coverage.
// withLists says whether coverage and popularity were measured.
func (a *accumulator) metrics(catalogueSize int, withLists bool) map[string]float64 {
	m := map[string]float64{}
	n := float64(max(a.n, 1))
	for i, k := range a.ks {
		m[MetricKey(MetricHR, k)] = a.hr[i] / n
		m[MetricKey(MetricNDCG, k)] = a.ndcg[i] / n
		m[MetricKey(MetricPrecision, k)] = a.hr[i] / n / float64(k)
		m[MetricKey(MetricRecall, k)] = a.hr[i] / n
		if withLists {
			if catalogueSize > 0 {
				m[MetricKey(MetricCoverage, k)] = float64(len(a.recs[i])) / float64(catalogueSize)
			} else {
				m[MetricKey(MetricCoverage, k)] = 0
			}
			c := float64(max(a.popC[i], 1))
			m[MetricKey(MetricPopularity, k)] = a.pop[i] / c
			m[MetricKey(MetricPopularityNorm, k)] = a.popN[i] / c
		}
	}
	m[MetricMRR] = a.mrr / n
	return m
}
