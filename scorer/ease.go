package scorer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"github.com/recstream/recstream/internal/ease"
	"github.com/recstream/recstream/internal/topk"
	"github.com/recstream/recstream/store"
)

// SourceEASE is the source name of the EASE item model.
const SourceEASE = "ease"

// EASESource is what the EASE refresh reads: every user's live vector.
type EASESource interface {
	ScanUsers(ctx context.Context, batch int, fn func(users []string) error) error
	UserVectors(ctx context.Context, users []string, n int) (map[string][]store.Scored, error)
}

var _ EASESource = (*store.Store)(nil)

// EASEOptions configures an EASE model; EASEOptionsFromConfig gives the
// options of a configuration. NewEASE panics on a zero but Logger.
type EASEOptions struct {
	// Lambda is the L2 regularisation λ.
	Lambda float64
	// MaxItems keeps the model to the items with the most users: the
	// model is a dense MaxItems² matrix of float32 (4·n² bytes); a refresh
	// holds up to 12·n² bytes more (the system in float64, then the new
	// model beside the old one) and solves in O(n³) time.
	MaxItems int
	// UserItems is how many of each user's strongest items are read.
	UserItems int
	// Interval is the background refresh period of Run.
	Interval time.Duration
	Logger   *slog.Logger // nil: discard
}

func (o *EASEOptions) check() {
	bad := func(name string, v any) {
		panic(fmt.Sprintf("scorer.NewEASE: EASEOptions.%s is %v; build the options with EASEOptionsFromConfig", name, v))
	}
	switch {
	case o.Lambda <= 0:
		bad("Lambda", o.Lambda)
	case o.MaxItems <= 0:
		bad("MaxItems", o.MaxItems)
	case o.UserItems <= 0:
		bad("UserItems", o.UserItems)
	case o.Interval <= 0:
		bad("Interval", o.Interval)
	}
}

// EASE is Steck's closed-form item-item model ("Embarrassingly Shallow
// Autoencoders for Sparse Data", WWW 2019), B = I − P·diagMat(1/diag(P))
// with P = (XᵀX + λI)⁻¹, where X is the binary user-item matrix of the live
// user vectors in Redis. Refresh recomputes B in the background; scoring
// applies the current B to the user's live vector at request time
// (score_j = Σ_i x_ui·B_ij with x_ui the user's weights scaled to a maximum
// of 1), so lists react to every new event at once and only the item-item
// weights lag by one refresh interval.
type EASE struct {
	opt   EASEOptions
	model atomic.Pointer[easeModel]
}

type easeModel struct {
	idx   map[string]int
	items []string
	b     []float32 // n×n row-major: b[i*n+j] is the weight of item i in the score of j
	built time.Time
	users int
}

// NewEASE returns an EASE model with no weights yet (it scores nothing
// until the first Refresh). It panics on a zero option but Logger.
func NewEASE(opt EASEOptions) *EASE {
	opt.check()
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	return &EASE{opt: opt}
}

// Options returns the effective options.
func (e *EASE) Options() EASEOptions { return e.opt }

// Items returns the number of items of the current model (0 before the
// first Refresh).
func (e *EASE) Items() int {
	if m := e.model.Load(); m != nil {
		return len(m.items)
	}
	return 0
}

// Run refreshes the model now and then every Interval until ctx ends, on
// a thread of the lowest priority (inBackground).
// Refresh errors are logged and retried at the next tick.
func (e *EASE) Run(ctx context.Context, src EASESource) error {
	t := time.NewTicker(e.opt.Interval)
	defer t.Stop()
	for {
		start := time.Now()
		if err := inBackground(func() error { return e.Refresh(ctx, src) }); err != nil {
			if ctx.Err() != nil {
				return nil
			}
			e.opt.Logger.Warn("ease refresh failed", "err", err)
		} else {
			e.opt.Logger.Info("ease refreshed", "items", e.Items(), "seconds", time.Since(start).Seconds())
		}
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Refresh reads every user vector, keeps the MaxItems items with the most
// users and solves the model. The new weights replace the old atomically.
func (e *EASE) Refresh(ctx context.Context, src EASESource) error {
	// Every user's items, numbered as met: a flat list of numbers with
	// each user's end in ends, so that the scan holds 4 bytes per item of
	// a user rather than a string.
	num := make(map[string]int32)
	var names []string
	var flat []int32
	var ends []int
	err := src.ScanUsers(ctx, 500, func(users []string) error {
		vecs, err := src.UserVectors(ctx, users, e.opt.UserItems)
		if err != nil {
			return err
		}
		for _, u := range users {
			if len(vecs[u]) == 0 {
				continue
			}
			for _, x := range vecs[u] {
				id, ok := num[x.ID]
				if !ok {
					id = int32(len(names))
					num[x.ID] = id
					names = append(names, x.ID)
				}
				flat = append(flat, id)
			}
			ends = append(ends, len(flat))
		}
		return nil
	})
	if err != nil {
		return err
	}
	m, err := solveEASE(ctx, names, flat, ends, e.opt.Lambda, e.opt.MaxItems)
	if err != nil {
		return err
	}
	m.users = len(ends)
	m.built = time.Now()
	e.model.Store(m)
	return nil
}

// solveEASE builds the binary Gram matrix of the users' items (user k's
// are flat[ends[k-1]:ends[k]], numbers of names) over the maxItems items
// with the most users (ties by id) and solves EASE.
func solveEASE(ctx context.Context, names []string, flat []int32, ends []int, lambda float64, maxItems int) (*easeModel, error) {
	deg := make([]int, len(names))
	for _, id := range flat {
		deg[id]++
	}
	order := make([]int32, len(names))
	for i := range order {
		order[i] = int32(i)
	}
	sort.Slice(order, func(a, b int) bool {
		x, y := order[a], order[b]
		if deg[x] != deg[y] {
			return deg[x] > deg[y]
		}
		return names[x] < names[y]
	})
	if len(order) > maxItems {
		order = order[:maxItems]
	}
	items := make([]string, len(order))
	for i, id := range order {
		items[i] = names[id]
	}
	sort.Strings(items)
	n := len(items)
	m := &easeModel{idx: make(map[string]int, n), items: items}
	col := make([]int32, len(names)) // number -> place in the model + 1; 0: not in it
	for i, it := range items {
		m.idx[it] = i
	}
	for _, id := range order {
		col[id] = int32(m.idx[names[id]]) + 1
	}
	if n == 0 {
		return m, nil
	}
	g := make([]float64, n*n)
	var cols []int
	from := 0
	for k, end := range ends {
		if k&0xff == 0 {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
		}
		cols = cols[:0]
		for _, id := range flat[from:end] {
			if c := col[id]; c > 0 {
				cols = append(cols, int(c-1))
			}
		}
		from = end
		sort.Ints(cols)
		for p, a := range cols {
			base := a * n
			for _, b := range cols[p:] {
				g[base+b]++
			}
		}
	}
	b, err := ease.Solve(ctx, g, n, lambda)
	if err != nil {
		return nil, err
	}
	m.b = make([]float32, len(b))
	for i, v := range b {
		m.b[i] = float32(v)
	}
	return m, nil
}

// Weight returns B_ij, the weight of item i in the score of item j (0 for
// items outside the model).
func (e *EASE) Weight(i, j string) float64 {
	m := e.model.Load()
	if m == nil {
		return 0
	}
	a, ok1 := m.idx[i]
	c, ok2 := m.idx[j]
	if !ok1 || !ok2 {
		return 0
	}
	return float64(m.b[a*len(m.items)+c])
}

// easeCache holds, for one Score call and model, each item number's place
// in the model + 1 (-1: not in it; 0: not looked up yet).
type easeCache struct {
	m  *easeModel
	at []int32
}

// place returns the place in m of item number id named name, -1 when m
// does not hold it.
func (c *easeCache) place(m *easeModel, id int32, name string) int {
	if c.m != m {
		c.m, c.at = m, c.at[:0]
	}
	if int(id) >= len(c.at) {
		c.at = append(c.at, make([]int32, int(id)+1-len(c.at))...)
	}
	if c.at[id] == 0 {
		c.at[id] = -1
		if i, ok := m.idx[name]; ok {
			c.at[id] = int32(i) + 1
		}
	}
	if v := c.at[id]; v > 0 {
		return int(v - 1)
	}
	return -1
}

// easeScratch is the per-user working memory of scoreVector, pooled: a
// slice of the model's size per rescored user would otherwise be garbage.
type easeScratch struct {
	scores []float64
	order  []int
}

var easePool = sync.Pool{New: func() any { return new(easeScratch) }}

// scoreVector returns x·B for the user's items (weights scaled to a maximum
// of 1) in sc's slice.
func (e *EASE) scoreVector(items []store.Scored, sc *easeScratch) (m *easeModel, scores []float64) {
	m = e.model.Load()
	if m == nil || len(items) == 0 {
		return nil, nil
	}
	maxW := 0.0
	for _, it := range items {
		maxW = max(maxW, it.Score)
	}
	if maxW <= 0 {
		return nil, nil
	}
	n := len(m.items)
	sc.scores = slices.Grow(sc.scores[:0], n)[:n]
	s := sc.scores
	clear(s)
	for _, it := range items {
		i, ok := m.idx[it.ID]
		if !ok {
			continue
		}
		w := it.Score / maxW
		for j, b := range m.b[i*n : (i+1)*n] {
			s[j] += w * float64(b)
		}
	}
	return m, s
}

// seed returns the user's item of the largest contribution to item's
// score (x_ui·B_ij), "" for none: the EASE reason's item.
func (m *easeModel) seed(items []store.Scored, item string) string {
	if m == nil {
		return ""
	}
	j, ok := m.idx[item]
	if !ok {
		return ""
	}
	n := len(m.items)
	best, seed := 0.0, ""
	for _, it := range items {
		if i, ok := m.idx[it.ID]; ok {
			if c := it.Score * float64(m.b[i*n+j]); c > best {
				best, seed = c, it.ID
			}
		}
	}
	return seed
}

// easeScores adds the EASE source to a user's candidates: every candidate
// the other sources proposed or Rank asked for that the model holds, and
// the model's 4·TopN best items beyond the user's own. An item outside
// those with no other source scores below all of them, so it could reach
// a list only when the filters (seen, availability, diversity) dropped
// more than three lists' worth of them. c caches the items' places in
// the model for the Score call.
func (s *Scorer) easeScores(us *UserScores, c *easeCache) {
	if s.opt.EASE == nil || s.opt.WeightEASE <= 0 {
		return
	}
	sc := easePool.Get().(*easeScratch)
	defer easePool.Put(sc)
	m, scores := s.opt.EASE.scoreVector(us.Profile.Items, sc)
	if m == nil {
		return
	}
	us.ease = m
	for k := range int32(us.len()) {
		id := us.t.rows[k].id
		if j := c.place(m, id, us.items.names[id]); j >= 0 && scores[j] > 0 {
			us.note(k, srcEASE, scores[j], "")
		}
	}
	best := sc.order[:0]
	for j, v := range scores {
		if v > 0 {
			best = append(best, j)
		}
	}
	sc.order = best
	best = topk.Best(best, 4*s.opt.TopN+len(us.Profile.Items), func(a, b int) int {
		if scores[a] != scores[b] {
			return cmp.Compare(scores[b], scores[a])
		}
		return cmp.Compare(a, b)
	})
	for _, j := range best {
		us.note(us.at(us.items.id(m.items[j])), srcEASE, scores[j], "")
	}
}
