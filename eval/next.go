package eval

import (
	"context"
	"fmt"
	"math"
	"slices"
	"time"
)

// NextItemConfig configures BatchNextItem. Zero values take the defaults
// of the production model (store and scorer options).
type NextItemConfig struct {
	// Window is how many of the user's latest distinct earlier items an
	// event adds a transition from (model.next_window; default 3).
	Window int
	// LogCap is how many of the user's latest events are searched for them
	// (model.user_log_cap; default 64).
	LogCap int
	// Recent is how many of the user's latest events give the items scored
	// from (scorer.recent_events; default 10), and Seeds how many of their
	// distinct items, newest first (default 10: all).
	Recent int
	Seeds  int
	// Weights are the event type weights (model.weights; nil:
	// DefaultWeights); a type missing from the map weighs 1.
	Weights map[string]float64
	// HalfLife is the event-time decay (model.half_life; 0: none).
	HalfLife time.Duration
	// K is the number of transitions of each row used (0 = all).
	K int
}

// BatchNextItem is the brute-force batch reference of the next-item source
// (store/next.go, scorer/next.go): from the whole training log, in time
// order, every event of a user on item j of type t at time τ adds
//
//	T(i → j) += w_t · 2^((τ − τ_0)/half_life) / k
//
// for each of the user's Window latest distinct earlier items i ≠ j among
// the user's LogCap latest events (i at distance k), and
//
//	score(u, j) = Σ_p 1/(p+1) · T(r_p → j) / max_j' T(r_p → j')
//
// over the Seeds first distinct items r_0 (newest), r_1, … of the user's
// Recent latest events. Plain maps, no caps, no fences.
type BatchNextItem struct {
	cfg     NextItemConfig
	itemIdx map[string]int32
	items   []string
	rows    []map[int32]float64 // T by source item
	seeds   map[string][]int32  // each user's latest distinct items, newest first
	cache   scoreCache
}

// NewBatchNextItem returns an unfitted next-item reference.
func NewBatchNextItem(cfg NextItemConfig) *BatchNextItem {
	if cfg.Window <= 0 {
		cfg.Window = 3
	}
	if cfg.LogCap <= 0 {
		cfg.LogCap = 64
	}
	if cfg.Recent <= 0 {
		cfg.Recent = 10
	}
	if cfg.Seeds <= 0 {
		cfg.Seeds = 10
	}
	if cfg.Weights == nil {
		cfg.Weights = DefaultWeights()
	}
	return &BatchNextItem{cfg: cfg}
}

// Name implements Model, e.g. "NextItem(window=3)".
func (m *BatchNextItem) Name() string {
	if m.cfg.K > 0 {
		return fmt.Sprintf("NextItem(window=%d,k=%d)", m.cfg.Window, m.cfg.K)
	}
	return fmt.Sprintf("NextItem(window=%d)", m.cfg.Window)
}

// Fit implements Model.
func (m *BatchNextItem) Fit(ctx context.Context, train []Interaction) error {
	m.cache.reset()
	events := sortedCopy(train)
	m.itemIdx = map[string]int32{}
	m.items = nil
	id := func(it string) int32 {
		k, ok := m.itemIdx[it]
		if !ok {
			k = int32(len(m.items))
			m.itemIdx[it] = k
			m.items = append(m.items, it)
		}
		return k
	}
	logs := map[string][]int32{} // each user's items, oldest first
	var t0 int64
	if len(events) > 0 {
		t0 = events[0].TS
	}
	for n, e := range events {
		if n%4096 == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		j := id(e.Item)
		for len(m.rows) < len(m.items) {
			m.rows = append(m.rows, nil)
		}
		w, ok := m.cfg.Weights[e.Type]
		if !ok {
			w = 1
		}
		if m.cfg.HalfLife > 0 {
			w *= math.Exp2(float64(e.TS-t0) / float64(m.cfg.HalfLife.Milliseconds()))
		}
		log := logs[e.User]
		var met []int32
		for k := len(log) - 1; k >= 0 && k >= len(log)-m.cfg.LogCap && len(met) < m.cfg.Window; k-- {
			i := log[k]
			if i == j || slices.Contains(met, i) {
				continue
			}
			met = append(met, i)
			if m.rows[i] == nil {
				m.rows[i] = map[int32]float64{}
			}
			m.rows[i][j] += w / float64(len(met))
		}
		logs[e.User] = append(log, j)
	}
	m.seeds = make(map[string][]int32, len(logs))
	for u, log := range logs {
		var s []int32
		for k := len(log) - 1; k >= 0 && k >= len(log)-m.cfg.Recent && len(s) < m.cfg.Seeds; k-- {
			if !slices.Contains(s, log[k]) {
				s = append(s, log[k])
			}
		}
		m.seeds[u] = s
	}
	return nil
}

// Transitions returns T(from → ·) as learnt (nil when none).
func (m *BatchNextItem) Transitions(from string) map[string]float64 {
	i, ok := m.itemIdx[from]
	if !ok || m.rows[i] == nil {
		return nil
	}
	out := make(map[string]float64, len(m.rows[i]))
	for j, v := range m.rows[i] {
		out[m.items[j]] = v
	}
	return out
}

// row returns the used transitions of item i: all, or the K strongest.
func (m *BatchNextItem) row(i int32) []entry {
	r := make([]entry, 0, len(m.rows[i]))
	for j, v := range m.rows[i] {
		r = append(r, entry{idx: j, w: v})
	}
	slices.SortFunc(r, func(a, b entry) int {
		if a.w != b.w {
			if a.w > b.w {
				return -1
			}
			return 1
		}
		return int(a.idx - b.idx)
	})
	if m.cfg.K > 0 && len(r) > m.cfg.K {
		r = r[:m.cfg.K]
	}
	return r
}

func (m *BatchNextItem) scores(user string) []float64 {
	return m.cache.get(user, func() []float64 {
		s := make([]float64, len(m.items))
		for p, i := range m.seeds[user] {
			r := m.row(i)
			if len(r) == 0 || r[0].w <= 0 {
				continue
			}
			for _, x := range r {
				s[x.idx] += x.w / r[0].w / float64(p+1)
			}
		}
		return s
	})
}

// Score implements Model.
func (m *BatchNextItem) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	if m.itemIdx == nil {
		return pick(nil, nil, candidates), nil
	}
	return pick(m.itemIdx, m.scores(user), candidates), nil
}

// TopK implements Model. Items without a transition (score 0) are left out.
func (m *BatchNextItem) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	if m.itemIdx == nil {
		return nil, nil
	}
	return topK(m.items, m.scores(user), k, exclude, true), nil
}
