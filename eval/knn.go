package eval

import (
	"context"
	"fmt"
	"math"
	"runtime"
	"slices"
	"strings"
	"sync"
	"sync/atomic"
)

// Similarity names.
const (
	SimCosine       = "cosine"
	SimJaccard      = "jaccard"
	SimLift         = "lift"
	SimCooccurrence = "cooccurrence"
	SimPearson      = "pearson"
)

// parallelFor runs fn(worker, i) for i in [0, n) on GOMAXPROCS workers. Each
// worker has its own index in [0, workers) for scratch space.
func parallelFor(ctx context.Context, n int, fn func(worker, i int)) (workers int, err error) {
	workers = max(1, min(runtime.GOMAXPROCS(0), n))
	var next atomic.Int64
	var wg sync.WaitGroup
	for w := range workers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			for {
				i := int(next.Add(1) - 1)
				if i >= n || ctx.Err() != nil {
					return
				}
				fn(w, i)
			}
		}()
	}
	wg.Wait()
	return workers, ctx.Err()
}

// keepTop sorts neighbours by similarity (descending, ties by index), drops
// non-positive similarities and keeps the first k (k <= 0 keeps all).
func keepTop(nb []entry, k int) []entry {
	slices.SortFunc(nb, func(a, b entry) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		return int(a.idx - b.idx)
	})
	n := 0
	for n < len(nb) && nb[n].w > 0 {
		n++
	}
	nb = nb[:n]
	if k > 0 && len(nb) > k {
		nb = nb[:k]
	}
	return slices.Clip(nb)
}

// ItemKNNConfig configures BatchItemKNN.
type ItemKNNConfig struct {
	// Similarity is "cosine" (default), "jaccard", "lift" or "cooccurrence".
	Similarity string
	// Shrink is added to the similarity's denominator (0 = none).
	Shrink float64
	// K is the number of neighbours kept per item (0 = all).
	K int
	// Weighting gives the history weights a_uj of the score. Similarities
	// always use the binary matrix (a user either has the item or not).
	Weighting
}

// BatchItemKNN is the brute-force item-based collaborative filter: on the
// binary user-item matrix of the training data, c_ij is the number of users
// with both i and j and n_i the number of users with i;
//
//	cosine        c_ij / (sqrt(n_i·n_j) + shrink)
//	jaccard       c_ij / (n_i + n_j − c_ij + shrink)
//	lift          c_ij / (n_i·n_j + shrink)
//	cooccurrence  c_ij
//
// Each item keeps its K most similar items (its neighbourhood) and
// score(u,i) = Σ_{j ∈ hist(u) ∩ N(i)} sim(i,j)·a_uj.
type BatchItemKNN struct {
	cfg   ItemKNNConfig
	m     *matrix
	nbr   [][]entry // per item i: its neighbours j with sim(i,j)
	rev   [][]entry // per item j: the items i having j as neighbour, with sim(i,j)
	cache scoreCache
}

var _ HistoryModel = (*BatchItemKNN)(nil)

// NewBatchItemKNN returns an unfitted item-kNN model.
func NewBatchItemKNN(cfg ItemKNNConfig) *BatchItemKNN {
	if cfg.Similarity == "" {
		cfg.Similarity = SimCosine
	}
	return &BatchItemKNN{cfg: cfg}
}

// Name implements Model, e.g. "ItemKNN(cosine,k=100,shrink=10)".
func (m *BatchItemKNN) Name() string {
	var b strings.Builder
	fmt.Fprintf(&b, "ItemKNN(%s,k=%d,shrink=%g", m.cfg.Similarity, m.cfg.K, m.cfg.Shrink)
	if w := m.cfg.Weighting.String(); w != "" {
		b.WriteString("," + w)
	}
	b.WriteString(")")
	return b.String()
}

// Fit implements Model.
func (m *BatchItemKNN) Fit(ctx context.Context, train []Interaction) error {
	m.cache.reset()
	m.m, m.nbr, m.rev = nil, nil, nil
	var sim func(c, ni, nj float64) float64
	sh := m.cfg.Shrink
	switch m.cfg.Similarity {
	case SimCosine:
		sim = func(c, ni, nj float64) float64 { return c / (math.Sqrt(ni*nj) + sh) }
	case SimJaccard:
		sim = func(c, ni, nj float64) float64 { return c / (ni + nj - c + sh) }
	case SimLift:
		sim = func(c, ni, nj float64) float64 { return c / (ni*nj + sh) }
	case SimCooccurrence:
		sim = func(c, _, _ float64) float64 { return c }
	default:
		return fmt.Errorf("item-knn: unknown similarity %q", m.cfg.Similarity)
	}
	mat, err := buildMatrix(ctx, train, m.cfg.Weighting)
	if err != nil {
		return err
	}
	ni := len(mat.items)
	nbr := make([][]entry, ni)
	type scratch struct {
		c       []float64
		touched []int32
	}
	scr := make([]scratch, runtime.GOMAXPROCS(0))
	_, err = parallelFor(ctx, ni, func(w, i int) {
		s := &scr[w]
		if s.c == nil {
			s.c = make([]float64, ni)
		}
		s.touched = s.touched[:0]
		for _, u := range mat.cols[i] {
			for _, j := range mat.rows[u.idx] {
				if int(j.idx) == i {
					continue
				}
				if s.c[j.idx] == 0 {
					s.touched = append(s.touched, j.idx)
				}
				s.c[j.idx]++
			}
		}
		n := float64(len(mat.cols[i]))
		row := make([]entry, 0, len(s.touched))
		for _, j := range s.touched {
			row = append(row, entry{j, sim(s.c[j], n, float64(len(mat.cols[j])))})
			s.c[j] = 0
		}
		nbr[i] = keepTop(row, m.cfg.K)
	})
	if err != nil {
		return err
	}
	rev := make([][]entry, ni)
	for i, row := range nbr {
		for _, e := range row {
			rev[e.idx] = append(rev[e.idx], entry{int32(i), e.w})
		}
	}
	m.m, m.nbr, m.rev = mat, nbr, rev
	return nil
}

// scores returns the full score vector of a user (nil before Fit).
func (m *BatchItemKNN) scores(user string) []float64 {
	if m.m == nil {
		return nil
	}
	return m.cache.get(user, func() []float64 {
		u, ok := m.m.userIdx[user]
		if !ok {
			return make([]float64, len(m.m.items))
		}
		return m.scoreHistory(m.m.rows[u])
	})
}

// scoreHistory returns Σ_j a_uj·sim(i,j) for every item i.
func (m *BatchItemKNN) scoreHistory(hist []entry) []float64 {
	s := make([]float64, len(m.m.items))
	for _, j := range hist {
		for _, e := range m.rev[j.idx] {
			s[e.idx] += e.w * j.w
		}
	}
	return s
}

// ScoreEvents implements HistoryModel.
func (m *BatchItemKNN) ScoreEvents(events []Interaction, candidates []string) []float64 {
	if m.m == nil {
		return pick(nil, nil, candidates)
	}
	return pick(m.m.itemIdx, m.scoreHistory(history(events, m.cfg.Weighting, m.m.itemIdx)), candidates)
}

// TopKEvents implements HistoryModel.
func (m *BatchItemKNN) TopKEvents(events []Interaction, k int, exclude map[string]bool) []string {
	if m.m == nil {
		return nil
	}
	return topK(m.m.items, m.scoreHistory(history(events, m.cfg.Weighting, m.m.itemIdx)), k, exclude, true)
}

// Similarity returns sim(i,j) as kept in i's neighbourhood (0 if absent).
func (m *BatchItemKNN) Similarity(i, j string) float64 {
	if m.m == nil {
		return 0
	}
	a, ok1 := m.m.itemIdx[i]
	b, ok2 := m.m.itemIdx[j]
	if !ok1 || !ok2 {
		return 0
	}
	for _, e := range m.nbr[a] {
		if e.idx == b {
			return e.w
		}
	}
	return 0
}

// Neighbours returns the kept neighbours of an item, most similar first.
func (m *BatchItemKNN) Neighbours(item string) []Neighbour {
	if m.m == nil {
		return nil
	}
	i, ok := m.m.itemIdx[item]
	if !ok {
		return nil
	}
	out := make([]Neighbour, len(m.nbr[i]))
	for n, e := range m.nbr[i] {
		out[n] = Neighbour{ID: m.m.items[e.idx], Sim: e.w}
	}
	return out
}

// Score implements Model.
func (m *BatchItemKNN) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	if m.m == nil {
		return pick(nil, nil, candidates), nil
	}
	return pick(m.m.itemIdx, m.scores(user), candidates), nil
}

// TopK implements Model. Items without evidence (score 0) are left out, so
// the list may be shorter than k.
func (m *BatchItemKNN) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	if m.m == nil {
		return nil, nil
	}
	return topK(m.m.items, m.scores(user), k, exclude, true), nil
}

// Neighbour is a similar user or item.
type Neighbour struct {
	ID  string
	Sim float64
}

// UserKNNConfig configures BatchUserKNN.
type UserKNNConfig struct {
	// Similarity is "cosine" (default) or "pearson".
	Similarity string
	// K is the number of neighbours per user (0 = every user with a shared
	// item and a positive similarity).
	K int
	// Shrink is added to the similarity's denominator (0 = none).
	Shrink float64
	// Weighting gives the user vectors (Binary for 0/1 vectors). Pearson
	// needs non-constant weights, e.g. UseValue for ratings.
	Weighting
}

// BatchUserKNN is the brute-force user-based collaborative filter. On user
// vectors r_u (weights a_ui of the training data):
//
//	cosine   Σ_i r_ui·r_vi / (‖r_u‖·‖r_v‖ + shrink)
//	pearson  Σ_{i∈I_uv} (r_ui−μ_u)(r_vi−μ_v) /
//	         (sqrt(Σ_{i∈I_uv}(r_ui−μ_u)²·Σ_{i∈I_uv}(r_vi−μ_v)²) + shrink)
//
// where μ_u is the mean of u's weights and I_uv the items both have. The
// neighbourhood N(u) is the K most similar users among those who share at
// least one item (positive similarities only), and
// R_ui = Σ_{v∈N(u)} sim(u,v)·r_vi / Σ_{v∈N(u)} |sim(u,v)|.
type BatchUserKNN struct {
	cfg   UserKNNConfig
	m     *matrix
	nbr   [][]entry
	norm  []float64 // Σ|sim| of each user's neighbourhood
	cache scoreCache
}

var _ Model = (*BatchUserKNN)(nil)

// NewBatchUserKNN returns an unfitted user-kNN model.
func NewBatchUserKNN(cfg UserKNNConfig) *BatchUserKNN {
	if cfg.Similarity == "" {
		cfg.Similarity = SimCosine
	}
	return &BatchUserKNN{cfg: cfg}
}

// Name implements Model, e.g. "UserKNN(cosine,k=50,shrink=0)".
func (m *BatchUserKNN) Name() string {
	var b strings.Builder
	fmt.Fprintf(&b, "UserKNN(%s,k=%d,shrink=%g", m.cfg.Similarity, m.cfg.K, m.cfg.Shrink)
	if w := m.cfg.Weighting.String(); w != "" {
		b.WriteString("," + w)
	}
	b.WriteString(")")
	return b.String()
}

// Fit implements Model.
func (m *BatchUserKNN) Fit(ctx context.Context, train []Interaction) error {
	m.cache.reset()
	m.m, m.nbr, m.norm = nil, nil, nil
	pearson := false
	switch m.cfg.Similarity {
	case SimCosine:
	case SimPearson:
		pearson = true
	default:
		return fmt.Errorf("user-knn: unknown similarity %q", m.cfg.Similarity)
	}
	mat, err := buildMatrix(ctx, train, m.cfg.Weighting)
	if err != nil {
		return err
	}
	nu := len(mat.users)
	norm := make([]float64, nu) // ‖r_u‖
	mean := make([]float64, nu) // μ_u
	for u, row := range mat.rows {
		var s, s2 float64
		for _, e := range row {
			s += e.w
			s2 += e.w * e.w
		}
		norm[u] = math.Sqrt(s2)
		if len(row) > 0 {
			mean[u] = s / float64(len(row))
		}
	}
	type scratch struct {
		dot, su, sv []float64
		seen        []bool
		touched     []int32
	}
	scr := make([]scratch, runtime.GOMAXPROCS(0))
	nbr := make([][]entry, nu)
	sh := m.cfg.Shrink
	_, err = parallelFor(ctx, nu, func(w, u int) {
		s := &scr[w]
		if s.dot == nil {
			s.dot, s.su, s.sv, s.seen = make([]float64, nu), make([]float64, nu), make([]float64, nu), make([]bool, nu)
		}
		s.touched = s.touched[:0]
		for _, e := range mat.rows[u] {
			for _, v := range mat.cols[e.idx] {
				if int(v.idx) == u {
					continue
				}
				if !s.seen[v.idx] {
					s.seen[v.idx] = true
					s.touched = append(s.touched, v.idx)
				}
				if pearson {
					du, dv := e.w-mean[u], v.w-mean[v.idx]
					s.dot[v.idx] += du * dv
					s.su[v.idx] += du * du
					s.sv[v.idx] += dv * dv
				} else {
					s.dot[v.idx] += e.w * v.w
				}
			}
		}
		row := make([]entry, 0, len(s.touched))
		for _, v := range s.touched {
			var sim float64
			if pearson {
				if d := math.Sqrt(s.su[v]*s.sv[v]) + sh; d > 0 {
					sim = s.dot[v] / d
				}
			} else if d := norm[u]*norm[v] + sh; d > 0 {
				sim = s.dot[v] / d
			}
			row = append(row, entry{v, sim})
			s.dot[v], s.su[v], s.sv[v], s.seen[v] = 0, 0, 0, false
		}
		nbr[u] = keepTop(row, m.cfg.K)
	})
	if err != nil {
		return err
	}
	m.norm = make([]float64, nu)
	for u, row := range nbr {
		for _, e := range row {
			m.norm[u] += math.Abs(e.w)
		}
	}
	m.m, m.nbr = mat, nbr
	return nil
}

// Neighbours returns the neighbourhood of a user, most similar first.
func (m *BatchUserKNN) Neighbours(user string) []Neighbour {
	if m.m == nil {
		return nil
	}
	u, ok := m.m.userIdx[user]
	if !ok {
		return nil
	}
	out := make([]Neighbour, len(m.nbr[u]))
	for n, e := range m.nbr[u] {
		out[n] = Neighbour{ID: m.m.users[e.idx], Sim: e.w}
	}
	return out
}

func (m *BatchUserKNN) scores(user string) []float64 {
	if m.m == nil {
		return nil
	}
	return m.cache.get(user, func() []float64 {
		s := make([]float64, len(m.m.items))
		u, ok := m.m.userIdx[user]
		if !ok || m.norm[u] == 0 {
			return s
		}
		for _, v := range m.nbr[u] {
			for _, e := range m.m.rows[v.idx] {
				s[e.idx] += v.w * e.w
			}
		}
		for i := range s {
			s[i] /= m.norm[u]
		}
		return s
	})
}

// Score implements Model.
func (m *BatchUserKNN) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	if m.m == nil {
		return pick(nil, nil, candidates), nil
	}
	return pick(m.m.itemIdx, m.scores(user), candidates), nil
}

// TopK implements Model. Items without evidence (score 0) are left out, so
// the list may be shorter than k.
func (m *BatchUserKNN) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	if m.m == nil {
		return nil, nil
	}
	return topK(m.m.items, m.scores(user), k, exclude, true), nil
}
