package eval

import (
	"container/heap"
	"context"
	"fmt"
	"math"
	"slices"
	"strings"
	"sync"
)

// Model is what the protocols drive.
type Model interface {
	Name() string
	// Fit gives the training interactions in time order. Incremental models
	// may consume them one by one; batch models compute everything here.
	// Fit replaces whatever the model learnt before.
	Fit(ctx context.Context, train []Interaction) error
	// Score returns a score per candidate (same order); math.Inf(-1) for an
	// item the model cannot score.
	Score(ctx context.Context, user string, candidates []string) ([]float64, error)
	// TopK returns the user's top k items, best first, excluding the given
	// seen set (which may be nil).
	TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error)
}

// Learner is a Model that can learn one interaction at a time, for the
// prequential (test-then-learn) protocol.
type Learner interface {
	Model
	Observe(ctx context.Context, it Interaction) error
}

// Weighting turns one user's training events on one item into the single
// weight a_ui of the user-item matrix. The zero value weighs every event 1,
// so a_ui counts events (1 per rating for MovieLens).
type Weighting struct {
	// Binary makes every user-item pair weigh 1 whatever its events.
	Binary bool
	// Weights is the implicit weight per event type (e.g. DefaultWeights);
	// a type missing from a non-nil map weighs 1, and a weight of 0 ignores
	// that type. Nil weighs every event 1.
	Weights map[string]float64
	// UseValue multiplies each event's weight by its Value (the rating).
	UseValue bool
}

// DefaultWeights are the implicit weights of the design brief: browse 1,
// click 2, add_to_cart 4, purchase 8.
func DefaultWeights() map[string]float64 {
	return map[string]float64{TypeBrowse: 1, TypeClick: 2, TypeAddToCart: 4, TypePurchase: 8}
}

func (w Weighting) event(it Interaction) float64 {
	v := 1.0
	if w.Weights != nil {
		if x, ok := w.Weights[it.Type]; ok {
			v = x
		}
	}
	if w.UseValue {
		v *= it.Value
	}
	return v
}

func (w Weighting) String() string {
	var parts []string
	if w.Binary {
		parts = append(parts, "binary")
	}
	if w.Weights != nil {
		parts = append(parts, "typed")
	}
	if w.UseValue {
		parts = append(parts, "value")
	}
	return strings.Join(parts, "+")
}

// entry is one non-zero of a sparse row.
type entry struct {
	idx int32
	w   float64
}

// matrix is the user-item matrix of a training log, indexed both ways.
type matrix struct {
	userIdx map[string]int32
	users   []string
	itemIdx map[string]int32
	items   []string
	rows    [][]entry // per user: (item, a_ui), by item index
	cols    [][]entry // per item: (user, a_ui), by user index
}

// buildMatrix aggregates train into a_ui with w. Pairs whose weight is 0 are
// dropped (unless Binary). Users and items are numbered in order of first
// appearance.
func buildMatrix(ctx context.Context, train []Interaction, w Weighting) (*matrix, error) {
	m := &matrix{userIdx: map[string]int32{}, itemIdx: map[string]int32{}}
	type pair struct{ u, i int32 }
	agg := map[pair]float64{}
	var order []pair
	for n, it := range train {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		u, ok := m.userIdx[it.User]
		if !ok {
			u = int32(len(m.users))
			m.userIdx[it.User] = u
			m.users = append(m.users, it.User)
		}
		i, ok := m.itemIdx[it.Item]
		if !ok {
			i = int32(len(m.items))
			m.itemIdx[it.Item] = i
			m.items = append(m.items, it.Item)
		}
		p := pair{u, i}
		if _, ok := agg[p]; !ok {
			order = append(order, p)
		}
		agg[p] += w.event(it)
	}
	m.rows = make([][]entry, len(m.users))
	m.cols = make([][]entry, len(m.items))
	for _, p := range order {
		a := agg[p]
		if w.Binary {
			a = 1
		}
		if a == 0 || math.IsNaN(a) {
			continue
		}
		m.rows[p.u] = append(m.rows[p.u], entry{p.i, a})
		m.cols[p.i] = append(m.cols[p.i], entry{p.u, a})
	}
	for _, r := range m.rows {
		slices.SortFunc(r, func(a, b entry) int { return int(a.idx - b.idx) })
	}
	for _, c := range m.cols {
		slices.SortFunc(c, func(a, b entry) int { return int(a.idx - b.idx) })
	}
	return m, nil
}

// history aggregates one user's events into (item, a_ui) entries over the
// items of idx, as buildMatrix does; events on unknown items are ignored.
func history(events []Interaction, w Weighting, idx map[string]int32) []entry {
	agg := map[int32]float64{}
	var order []int32
	for _, it := range events {
		i, ok := idx[it.Item]
		if !ok {
			continue
		}
		if _, seen := agg[i]; !seen {
			order = append(order, i)
		}
		agg[i] += w.event(it)
	}
	out := make([]entry, 0, len(order))
	for _, i := range order {
		a := agg[i]
		if w.Binary {
			a = 1
		}
		if a == 0 || math.IsNaN(a) {
			continue
		}
		out = append(out, entry{i, a})
	}
	return out
}

// HistoryModel is a model that can score for an explicit list of a user's
// events instead of the training interactions it was fitted on. Item-item
// models (BatchItemKNN, EASE) are: their learnt part is the item-item
// matrix, and a user is just a history. Periodic uses it to apply a model
// fitted earlier to live user histories, as the production design applies a
// background-refreshed item model to live user vectors.
type HistoryModel interface {
	Model
	// ScoreEvents scores candidates for a user whose events are events
	// (-Inf for items the model does not know).
	ScoreEvents(events []Interaction, candidates []string) []float64
	// TopKEvents is TopK for a user whose events are events.
	TopKEvents(events []Interaction, k int, exclude map[string]bool) []string
}

// pick returns the scores of candidates from a full score vector indexed by
// item; items outside the index get -Inf.
func pick(itemIdx map[string]int32, scores []float64, candidates []string) []float64 {
	out := make([]float64, len(candidates))
	for n, c := range candidates {
		i, ok := itemIdx[c]
		if !ok || scores == nil {
			out[n] = math.Inf(-1)
			continue
		}
		out[n] = scores[i]
	}
	return out
}

// scored is a heap element of topK.
type scored struct {
	id    string
	score float64
}

// worse says whether a ranks below b: lower score, or equal score and a
// larger id (ties are broken by id, ascending, for determinism).
func worse(a, b scored) bool {
	if a.score != b.score {
		return a.score < b.score
	}
	return a.id > b.id
}

type minHeap []scored

func (h minHeap) Len() int           { return len(h) }
func (h minHeap) Less(i, j int) bool { return worse(h[i], h[j]) }
func (h minHeap) Swap(i, j int)      { h[i], h[j] = h[j], h[i] }
func (h *minHeap) Push(x any)        { *h = append(*h, x.(scored)) }
func (h *minHeap) Pop() any {
	old := *h
	x := old[len(old)-1]
	*h = old[:len(old)-1]
	return x
}

// topK returns the k best ids by score (ties by id), skipping excluded ids
// and -Inf/NaN scores, and scores <= 0 when positive is set (for models
// whose zero score means "no evidence").
func topK(ids []string, scores []float64, k int, exclude map[string]bool, positive bool) []string {
	if k <= 0 {
		return nil
	}
	h := make(minHeap, 0, k+1)
	for i, s := range scores {
		if math.IsInf(s, -1) || math.IsNaN(s) || (positive && s <= 0) {
			continue
		}
		if exclude[ids[i]] {
			continue
		}
		c := scored{ids[i], s}
		if len(h) < k {
			heap.Push(&h, c)
		} else if worse(h[0], c) {
			h[0] = c
			heap.Fix(&h, 0)
		}
	}
	out := make([]string, len(h))
	for i := len(h) - 1; i >= 0; i-- {
		out[i] = heap.Pop(&h).(scored).id
	}
	return out
}

// scoreCache keeps the last user's full score vector so that Score and TopK
// for the same user share the work.
type scoreCache struct {
	mu     sync.Mutex
	user   string
	scores []float64
	ok     bool
}

func (c *scoreCache) get(user string, compute func() []float64) []float64 {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.ok && c.user == user {
		return c.scores
	}
	c.scores, c.user, c.ok = compute(), user, true
	return c.scores
}

func (c *scoreCache) reset() {
	c.mu.Lock()
	c.ok, c.scores = false, nil
	c.mu.Unlock()
}

// Popularity recommends the items with the most training interactions (every
// event counts, whatever its type). It is also a Learner: Observe counts one
// more interaction in O(1). Items with equal counts are listed in an order
// that depends only on the sequence of interactions seen.
type Popularity struct {
	idx   map[string]int32
	ids   []string
	count []float64
	// order holds the items by decreasing count, in contiguous blocks of
	// equal count; start[c] and size[c] locate the block of count c.
	order []int32
	pos   []int32
	start []int32
	size  []int32
}

var _ Learner = (*Popularity)(nil)

// NewPopularity returns an empty popularity model.
func NewPopularity() *Popularity { return &Popularity{} }

// Name implements Model.
func (p *Popularity) Name() string { return "Popularity" }

// Fit implements Model.
func (p *Popularity) Fit(ctx context.Context, train []Interaction) error {
	*p = Popularity{}
	for n, it := range train {
		if n&0xffff == 0 {
			if err := ctx.Err(); err != nil {
				return err
			}
		}
		p.bump(it.Item)
	}
	return nil
}

// Observe implements Learner.
func (p *Popularity) Observe(ctx context.Context, it Interaction) error {
	p.bump(it.Item)
	return nil
}

// bump adds one interaction to an item: the item swaps places with the
// first item of its count block, which then shrinks by one, and becomes the
// last item of the next block up.
func (p *Popularity) bump(item string) {
	if p.idx == nil {
		p.idx = map[string]int32{}
	}
	i, ok := p.idx[item]
	if !ok {
		i = int32(len(p.ids))
		p.idx[item] = i
		p.ids = append(p.ids, item)
		p.count = append(p.count, 0)
		if len(p.size) == 0 {
			p.start, p.size = []int32{0}, []int32{0}
		}
		if p.size[0] == 0 {
			p.start[0] = int32(len(p.order))
		}
		p.size[0]++
		p.pos = append(p.pos, int32(len(p.order)))
		p.order = append(p.order, i)
	}
	c := int(p.count[i])
	b := p.start[c]
	j := p.order[b]
	p.order[b], p.order[p.pos[i]] = i, j
	p.pos[j], p.pos[i] = p.pos[i], b
	p.start[c]++
	p.size[c]--
	p.count[i]++
	if c+1 == len(p.size) {
		p.start, p.size = append(p.start, 0), append(p.size, 0)
	}
	if p.size[c+1] == 0 {
		p.start[c+1] = b
	}
	p.size[c+1]++
}

// Count returns the number of interactions of an item seen so far.
func (p *Popularity) Count(item string) float64 {
	if i, ok := p.idx[item]; ok {
		return p.count[i]
	}
	return 0
}

// Score implements Model: the interaction count, -Inf for unseen items.
func (p *Popularity) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	return pick(p.idx, p.count, candidates), nil
}

// TopK implements Model.
func (p *Popularity) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	var out []string
	for _, i := range p.order {
		if len(out) >= k {
			break
		}
		if !exclude[p.ids[i]] {
			out = append(out, p.ids[i])
		}
	}
	return out, nil
}

// Periodic makes a batch Model a Learner for the prequential protocol: it
// keeps every interaction and refits the model on all of them after Every
// observed interactions (Every <= 0 means 1000). When the model is a
// HistoryModel, users are scored from their live histories (every event
// observed so far) with the item-item model of the last refit; otherwise
// the model does not know the newest interactions until the next refit (the
// protocol still excludes them from the lists).
type Periodic struct {
	Model  Model
	Every  int
	seen   []Interaction
	byUser map[string][]Interaction
	todo   int
}

var _ Learner = (*Periodic)(nil)

// NewPeriodic wraps m, refitting after every interactions.
func NewPeriodic(m Model, every int) *Periodic { return &Periodic{Model: m, Every: every} }

func (p *Periodic) every() int {
	if p.Every <= 0 {
		return 1000
	}
	return p.Every
}

// Name implements Model.
func (p *Periodic) Name() string { return fmt.Sprintf("%s/refit%d", p.Model.Name(), p.every()) }

// Fit implements Model.
func (p *Periodic) Fit(ctx context.Context, train []Interaction) error {
	p.seen = slices.Clone(train)
	p.byUser = map[string][]Interaction{}
	for _, it := range train {
		p.byUser[it.User] = append(p.byUser[it.User], it)
	}
	p.todo = 0
	return p.Model.Fit(ctx, p.seen)
}

// Observe implements Learner.
func (p *Periodic) Observe(ctx context.Context, it Interaction) error {
	if p.byUser == nil {
		p.byUser = map[string][]Interaction{}
	}
	p.seen = append(p.seen, it)
	p.byUser[it.User] = append(p.byUser[it.User], it)
	p.todo++
	if p.todo < p.every() {
		return nil
	}
	p.todo = 0
	return p.Model.Fit(ctx, p.seen)
}

// Score implements Model.
func (p *Periodic) Score(ctx context.Context, user string, candidates []string) ([]float64, error) {
	if h, ok := p.Model.(HistoryModel); ok {
		return h.ScoreEvents(p.byUser[user], candidates), nil
	}
	return p.Model.Score(ctx, user, candidates)
}

// TopK implements Model.
func (p *Periodic) TopK(ctx context.Context, user string, k int, exclude map[string]bool) ([]string, error) {
	if h, ok := p.Model.(HistoryModel); ok {
		return h.TopKEvents(p.byUser[user], k, exclude), nil
	}
	return p.Model.TopK(ctx, user, k, exclude)
}
