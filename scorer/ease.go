package scorer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
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
	// MaxItems keeps the model to the items with the most users: a fit
	// holds the MaxItems² system in float64 (8·n² bytes) and solves it in
	// O(n³) time.
	MaxItems int
	// RowItems is how many weights of each item the model keeps: the
	// largest in magnitude of its row of B (the item's weight in the
	// score of each other item). Scoring a user costs about RowItems per
	// item of the user's, and the model holds 8·RowItems bytes per item.
	RowItems int
	// UserItems is how many of each user's strongest items are read.
	UserItems int
	// Interval is the background refresh period of Run.
	Interval time.Duration
	// Solver, when set, solves a fit's request (SolveEASERequest's input)
	// elsewhere, e.g. in a child process at the lowest priority, and
	// returns the model's blob; when it fails, Refresh solves in this
	// process. nil: in this process, on a thread of the lowest priority.
	Solver func(ctx context.Context, req []byte) ([]byte, error)
	Logger *slog.Logger // nil: discard
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
	case o.RowItems <= 0:
		bad("RowItems", o.RowItems)
	case o.UserItems <= 0:
		bad("UserItems", o.UserItems)
	case o.Interval <= 0:
		bad("Interval", o.Interval)
	}
}

// EASE is Steck's closed-form item-item model ("Embarrassingly Shallow
// Autoencoders for Sparse Data", WWW 2019), B = I − P·diagMat(1/diag(P))
// with P = (XᵀX + λI)⁻¹, where X is the binary user-item matrix of the live
// user vectors in Redis. Refresh recomputes B; Run keeps it shared with
// the other processes through Redis (Update, ease_share.go); scoring
// applies the current B to the user's live vector at request time
// (score_j = Σ_i x_ui·B_ij with x_ui the user's weights scaled to a maximum
// of 1), so lists react to every new event at once and only the item-item
// weights lag by one refresh interval. Each item keeps the RowItems
// weights of its row of B largest in magnitude; the rest count as 0.
type EASE struct {
	opt   EASEOptions
	model atomic.Pointer[easeModel]
}

type easeModel struct {
	idx   map[string]int
	items []string
	// Row i, the kept weights of item i in the scores of other items:
	// cols[start[i]:start[i+1]] (ascending) and vals likewise, so that
	// B_ij = vals[p] where cols[p] = j.
	start []int32
	cols  []int32
	vals  []float32
	built time.Time
	users int
}

// weight returns B_ij, 0 when row i does not keep j.
func (m *easeModel) weight(i, j int) float64 {
	cols := m.cols[m.start[i]:m.start[i+1]]
	if p, ok := slices.BinarySearch(cols, int32(j)); ok {
		return float64(m.vals[int(m.start[i])+p])
	}
	return 0
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
	var m *easeModel
	if e.opt.Solver != nil {
		m, err = e.solveElsewhere(ctx, names, flat, ends)
		if err != nil && ctx.Err() == nil {
			e.opt.Logger.Warn("ease: solving in another process failed; solving here", "err", err)
		}
	}
	if m == nil {
		if m, err = solveEASE(ctx, names, flat, ends, e.opt.Lambda, e.opt.MaxItems, e.opt.RowItems); err != nil {
			return err
		}
	}
	m.users = len(ends)
	m.built = time.Now()
	e.model.Store(m)
	return nil
}

// solveEASE builds the binary Gram matrix of the users' items (user k's
// are flat[ends[k-1]:ends[k]], numbers of names) over the maxItems items
// with the most users (ties by id), solves EASE and keeps the rowItems
// weights of each row largest in magnitude.
func solveEASE(ctx context.Context, names []string, flat []int32, ends []int, lambda float64, maxItems, rowItems int) (*easeModel, error) {
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
		m.start = []int32{0}
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
	keepRows(m, b, n, rowItems)
	return m, nil
}

// keepRows fills m's rows from the dense n×n B: each row's k weights
// largest in magnitude (ties by column), the diagonal and zeros left out.
func keepRows(m *easeModel, b []float64, n, k int) {
	k = min(k, n-1)
	m.start = make([]int32, n+1)
	m.cols = make([]int32, 0, n*k)
	m.vals = make([]float32, 0, n*k)
	order := make([]int32, 0, n)
	for i := range n {
		row := b[i*n : (i+1)*n]
		order = order[:0]
		for j, v := range row {
			if j != i && v != 0 {
				order = append(order, int32(j))
			}
		}
		if len(order) > k {
			order = topk.Best(order, k, func(x, y int32) int {
				if a, c := math.Abs(row[x]), math.Abs(row[y]); a != c {
					return cmp.Compare(c, a)
				}
				return cmp.Compare(x, y)
			})
			slices.Sort(order)
		}
		for _, j := range order {
			m.cols = append(m.cols, j)
			m.vals = append(m.vals, float32(row[j]))
		}
		m.start[i+1] = int32(len(m.cols))
	}
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
	return m.weight(a, c)
}

// easeIndex maps the places of a model's items to their numbers in a
// scorer's item table and back, built once per model and table
// (Scorer.easeIndex) so that scoring indexes slices instead of hashing
// names. Every item of the model is numbered when the index is built, so
// a number beyond place is an item the model does not hold.
type easeIndex struct {
	m     *easeModel
	t     *table
	num   []int32 // by place: the item's number
	place []int32 // by number: the item's place + 1, 0 when the model does not hold it
}

func newEASEIndex(m *easeModel, t *table) *easeIndex {
	x := &easeIndex{m: m, t: t, num: make([]int32, len(m.items))}
	t.number(m.items, x.num)
	size := int32(0)
	for _, id := range x.num {
		size = max(size, id+1)
	}
	x.place = make([]int32, size)
	for j, id := range x.num {
		x.place[id] = int32(j) + 1
	}
	return x
}

// at returns the place of item number id, -1 when the model does not
// hold it.
func (x *easeIndex) at(id int32) int {
	if int(id) < len(x.place) {
		return int(x.place[id]) - 1
	}
	return -1
}

// easeScratch is the per-user working memory of scoreVector, pooled: a
// slice of the model's size per rescored user would otherwise be garbage.
// scores is 0 and in false but at touched, the places the last user's
// rows reached.
type easeScratch struct {
	scores  []float64
	in      []bool
	touched []int32
	order   []int
	own     []easeOwn // the user's items in the model
}

// reset empties the scratch for a model of n items.
func (sc *easeScratch) reset(n int) {
	if len(sc.scores) != n {
		sc.scores, sc.in, sc.touched = make([]float64, n), make([]bool, n), sc.touched[:0]
		return
	}
	for _, j := range sc.touched {
		sc.scores[j], sc.in[j] = 0, false
	}
	sc.touched = sc.touched[:0]
}

var easePool = sync.Pool{New: func() any { return new(easeScratch) }}

// scoreVector returns x·B for the user's items (weights scaled to a maximum
// of 1) in sc's slice, nonzero only at sc.touched.
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
	sc.reset(len(m.items))
	sc.own = sc.own[:0]
	s := sc.scores
	for _, it := range items {
		i, ok := m.idx[it.ID]
		if !ok {
			continue
		}
		sc.own = append(sc.own, easeOwn{place: int32(i), score: it.Score, id: it.ID})
		w := it.Score / maxW
		from, to := m.start[i], m.start[i+1]
		for p, j := range m.cols[from:to] {
			if !sc.in[j] {
				sc.in[j] = true
				sc.touched = append(sc.touched, j)
			}
			s[j] += w * float64(m.vals[int(from)+p])
		}
	}
	return m, s
}

// easeOwn is one of the user's items that the EASE model holds: its place
// and weight.
type easeOwn struct {
	place int32
	score float64
	id    string
}

// easeSeed returns the user's item of the largest contribution to
// candidate k's EASE score (x_ui·B_ij), "" for none: the EASE reason's
// item.
func (us *UserScores) easeSeed(k int32) string {
	x := us.ease
	if x == nil {
		return ""
	}
	j := x.at(us.t.rows[k].id)
	if j < 0 {
		return ""
	}
	best, seed := 0.0, ""
	for _, o := range us.easeOwn {
		if c := o.score * x.m.weight(int(o.place), j); c > best {
			best, seed = c, o.id
		}
	}
	return seed
}

// easeIndex returns the index of model m in table t, building it when the
// last one built is of another model or table (concurrent builds are
// equal; the last stored stays).
func (s *Scorer) easeIndex(m *easeModel, t *table) *easeIndex {
	if x := s.easeAt.Load(); x != nil && x.m == m && x.t == t {
		return x
	}
	x := newEASEIndex(m, t)
	s.easeAt.Store(x)
	return x
}

// easeScores adds the EASE source to a user's candidates: every candidate
// the other sources proposed or Rank asked for that the model holds, and
// the model's 4·TopN best items beyond the user's own. An item outside
// those with no other source scores below all of them, so it could reach
// a list only when the filters (seen, availability, diversity) dropped
// more than three lists' worth of them.
func (s *Scorer) easeScores(us *UserScores) {
	if s.opt.EASE == nil || s.opt.WeightEASE <= 0 {
		return
	}
	sc := easePool.Get().(*easeScratch)
	defer easePool.Put(sc)
	m, scores := s.opt.EASE.scoreVector(us.Profile.Items, sc)
	if m == nil {
		return
	}
	x := s.easeIndex(m, us.items.t)
	us.ease = x
	us.easeOwn = append(us.easeOwn[:0], sc.own...)
	for k := range int32(us.len()) {
		if j := x.at(us.t.rows[k].id); j >= 0 && scores[j] > 0 {
			us.note(k, srcEASE, scores[j], "")
		}
	}
	best := sc.order[:0]
	for _, j := range sc.touched {
		if scores[j] > 0 {
			best = append(best, int(j))
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
		us.note(us.at(us.items.known(x.num[j])), srcEASE, scores[j], "")
	}
}

// solveElsewhere solves the fit through opt.Solver.
func (e *EASE) solveElsewhere(ctx context.Context, names []string, flat []int32, ends []int) (*easeModel, error) {
	blob, err := e.opt.Solver(ctx, encodeEASERequest(easeRequest{names: names, flat: flat, ends: ends,
		lambda: e.opt.Lambda, maxItems: e.opt.MaxItems, rowItems: e.opt.RowItems}))
	if err != nil {
		return nil, err
	}
	return decodeEASEModel(blob)
}
