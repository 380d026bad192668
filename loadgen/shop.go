package loadgen

import (
	"math"
	"math/rand/v2"
	"sort"
	"time"

	"github.com/recstream/recstream/event"
)

// ShopOptions configures a sparse shop log (NewShop). Zero values take the
// defaults, which give a log shaped like a product-review shop log: about
// nine distinct items per user, few users per item, most items in a long
// tail, a user's items mostly from one department (a console platform, say)
// and a weak next-item signal (a complement follows an item now and then).
// Published shop logs are 5-core filtered; `recstream eval --synthetic-shop`
// applies that filter (eval.FilterMinCounts) to the generated log.
type ShopOptions struct {
	Users       int     // users before the filter (default 10,000)
	Items       int     // items before the filter (default 1.2·Users)
	Departments int     // item groups a user mostly shops in (default 5)
	Sigma       float64 // σ of the log-normal item appeal (default 2: a long tail)
	MeanLen     float64 // mean items per user, at least 5 (default 9)
	// Follow is the probability that an item is a complement of the
	// user's previous item (default 0.15); each item has Complements
	// (default 10) complements in its department, drawn by appeal^1.5,
	// the first ones the likeliest.
	Follow      float64
	Complements int
	// Stay is the probability that an item that is not a complement is
	// from the user's department (default 0.8); the rest are drawn from
	// the whole catalogue by appeal.
	Stay  float64
	Seed  uint64
	Start time.Time // first event time (default 2025-01-01 UTC)
}

// Shop is a sparse shop log: every event a click on an item new to the
// user, in time order.
type Shop struct {
	opt ShopOptions
}

// NewShop returns a shop log generator.
func NewShop(opt ShopOptions) *Shop {
	if opt.Users <= 0 {
		opt.Users = 10000
	}
	if opt.Items <= 0 {
		opt.Items = max(50, opt.Users*6/5)
	}
	if opt.Departments <= 0 {
		opt.Departments = 5
	}
	if opt.Sigma <= 0 {
		opt.Sigma = 2
	}
	if opt.MeanLen < 5 {
		opt.MeanLen = 9
	}
	if opt.Follow <= 0 {
		opt.Follow = 0.15
	}
	if opt.Complements <= 0 {
		opt.Complements = 10
	}
	if opt.Stay <= 0 {
		opt.Stay = 0.8
	}
	if opt.Start.IsZero() {
		opt.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	return &Shop{opt: opt}
}

// Options returns the effective options.
func (s *Shop) Options() ShopOptions { return s.opt }

// weighted draws items in proportion to fixed weights.
type weighted struct {
	items []int
	cum   []float64
}

func newWeighted(items []int, w func(int) float64) weighted {
	t := weighted{items: items, cum: make([]float64, len(items))}
	sum := 0.0
	for k, i := range items {
		sum += w(i)
		t.cum[k] = sum
	}
	return t
}

func (t weighted) draw(r *rand.Rand) int {
	k := sort.SearchFloat64s(t.cum, r.Float64()*t.cum[len(t.cum)-1])
	return t.items[min(k, len(t.items)-1)]
}

// Events returns the log in time order: each user's items, one click a
// minute, users one after another.
func (s *Shop) Events() []event.Event {
	o := s.opt
	r := rand.New(rand.NewPCG(o.Seed, o.Seed^0x2545f4914f6cdd1d))
	deptW := make([]float64, o.Departments)
	for d := range deptW {
		deptW[d] = 1 / math.Pow(float64(d+1), 0.8)
	}
	depts := make([]int, o.Departments)
	for d := range depts {
		depts[d] = d
	}
	pickDept := newWeighted(depts, func(d int) float64 { return deptW[d] })
	appeal := make([]float64, o.Items)
	byDept := make([][]int, o.Departments)
	all := make([]int, o.Items)
	dept := make([]int, o.Items)
	for i := range appeal {
		appeal[i] = math.Exp(r.NormFloat64() * o.Sigma)
		dept[i] = pickDept.draw(r)
		byDept[dept[i]] = append(byDept[dept[i]], i)
		all[i] = i
	}
	byAppeal := func(i int) float64 { return appeal[i] }
	global := newWeighted(all, byAppeal)
	inDept := make([]weighted, o.Departments)
	compIn := make([]weighted, o.Departments)
	for d, items := range byDept {
		if len(items) == 0 {
			items = []int{r.IntN(o.Items)}
		}
		inDept[d] = newWeighted(items, byAppeal)
		compIn[d] = newWeighted(items, func(i int) float64 { return math.Pow(appeal[i], 1.5) })
	}
	comps := make([][]int, o.Items)
	for i := range comps {
		for range o.Complements {
			comps[i] = append(comps[i], compIn[dept[i]].draw(r))
		}
	}
	var out []event.Event
	t := o.Start
	for u := 0; u < o.Users; u++ {
		d := pickDept.draw(r)
		n := 5 + int(r.ExpFloat64()*(o.MeanLen-5))
		seen := make(map[int]bool, n)
		prev := -1
		for range n {
			item := -1
			for try := 0; try < 50 && (item < 0 || seen[item]); try++ {
				switch {
				case prev >= 0 && r.Float64() < o.Follow:
					c := comps[prev]
					item = c[int(float64(len(c))*r.Float64()*r.Float64())]
				case r.Float64() < o.Stay:
					item = inDept[d].draw(r)
				default:
					item = global.draw(r)
				}
			}
			if seen[item] {
				continue
			}
			seen[item], prev = true, item
			t = t.Add(time.Minute)
			out = append(out, event.Event{UserID: UserID(u), ItemID: ItemID(item), Type: event.Click, TS: t.UnixMilli()})
		}
	}
	return out
}
