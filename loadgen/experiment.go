package loadgen

import (
	"math/rand/v2"
	"time"

	"github.com/recstream/recstream/event"
)

// ExperimentOptions configures a planted A/B experiment. Zero values take
// the defaults.
type ExperimentOptions struct {
	Users    int       // distinct users (default 1000)
	Items    int       // distinct items (default 500)
	Variants []string  // variant names, users split evenly by number (default a, b)
	CTR      []float64 // per variant: probability that a shown item is clicked (default 0.05 each)
	ListLen  int       // items per impression (default 10)
	CartRate float64   // probability that a clicked item is added to the cart (default 0.3)
	BuyRate  float64   // probability that a carted item is bought (default 0.5)
	Browse   float64   // browse events of unshown items per impression, mean (default 1)
	Seed     uint64
	// Start and Step set event time: event k has ts Start + k·Step. A zero
	// Start means the wall clock at each call.
	Start time.Time
	Step  time.Duration
}

// Sources are the sources the experiment's impressions name, one per
// position modulo its length.
var Sources = []string{"item_knn", "user_knn", "trending"}

// Experiment produces a planted A/B experiment: visits of a random user,
// each an impression of ListLen random items (the list of the user's
// variant) followed by clicks of shown items with the variant's
// click-through rate, carts and purchases of clicked items, and browses of
// items not shown. It records the truth each visit plants, per user. It is
// not safe for concurrent use.
type Experiment struct {
	opt   ExperimentOptions
	rng   *rand.Rand
	k     int64
	truth map[string]*UserTruth
}

// UserTruth is what the experiment planted for one user: items shown and
// shown items clicked, added to the cart and bought (each at most once per
// showing), and the purchases' value.
type UserTruth struct {
	Variant                    string
	Impressions                int
	Shown, Clicks, Carts, Buys int
	Value                      float64
	Clicked, Carted, Bought    bool // at least one
}

// NewExperiment returns a planted experiment.
func NewExperiment(opt ExperimentOptions) *Experiment {
	if opt.Users <= 0 {
		opt.Users = 1000
	}
	if opt.Items <= 0 {
		opt.Items = 500
	}
	if len(opt.Variants) == 0 {
		opt.Variants = []string{"a", "b"}
	}
	for len(opt.CTR) < len(opt.Variants) {
		opt.CTR = append(opt.CTR, 0.05)
	}
	if opt.ListLen <= 0 {
		opt.ListLen = 10
	}
	opt.ListLen = min(opt.ListLen, opt.Items)
	if opt.CartRate <= 0 {
		opt.CartRate = 0.3
	}
	if opt.BuyRate <= 0 {
		opt.BuyRate = 0.5
	}
	if opt.Browse <= 0 {
		opt.Browse = 1
	}
	return &Experiment{opt: opt, rng: rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x5851f42d4c957f2d)), truth: map[string]*UserTruth{}}
}

// VariantOf returns the variant of user number n.
func (x *Experiment) VariantOf(n int) string { return x.opt.Variants[n%len(x.opt.Variants)] }

func (x *Experiment) ts() int64 {
	x.k++
	if x.opt.Start.IsZero() {
		return time.Now().UnixMilli()
	}
	return x.opt.Start.Add(time.Duration(x.k) * x.opt.Step).UnixMilli()
}

// Visit returns the events of one visit, the impression first.
func (x *Experiment) Visit() []event.Event {
	n := x.rng.IntN(x.opt.Users)
	user := UserID(n)
	vi := n % len(x.opt.Variants)
	v := x.opt.Variants[vi]
	tr := x.truth[user]
	if tr == nil {
		tr = &UserTruth{Variant: v}
		x.truth[user] = tr
	}
	perm := make([]int, 0, x.opt.ListLen)
	for len(perm) < x.opt.ListLen {
		if it := x.rng.IntN(x.opt.Items); !contains(perm, it) {
			perm = append(perm, it)
		}
	}
	shown := &event.Shown{Variant: v}
	for i, it := range perm {
		shown.Items = append(shown.Items, ItemID(it))
		shown.Sources = append(shown.Sources, Sources[i%len(Sources)])
	}
	tr.Impressions++
	tr.Shown += len(perm)
	evs := []event.Event{{UserID: user, Type: event.Impression, TS: x.ts(), Shown: shown}}
	for _, it := range perm {
		if x.rng.Float64() >= x.opt.CTR[vi] {
			continue
		}
		id := ItemID(it)
		evs = append(evs, event.Event{UserID: user, ItemID: id, Type: event.Click, TS: x.ts()})
		tr.Clicks++
		tr.Clicked = true
		if x.rng.Float64() >= x.opt.CartRate {
			continue
		}
		evs = append(evs, event.Event{UserID: user, ItemID: id, Type: event.AddToCart, TS: x.ts()})
		tr.Carts++
		tr.Carted = true
		if x.rng.Float64() >= x.opt.BuyRate {
			continue
		}
		price := float64(5 + x.rng.IntN(96))
		evs = append(evs, event.Event{UserID: user, ItemID: id, Type: event.Purchase, TS: x.ts(), Value: price})
		tr.Buys++
		tr.Value += price
		tr.Bought = true
	}
	// Browses of items not shown in this visit: never attributed to it.
	for b := x.rng.ExpFloat64() * x.opt.Browse; b >= 0.5; b-- {
		it := x.rng.IntN(x.opt.Items)
		if contains(perm, it) {
			continue
		}
		evs = append(evs, event.Event{UserID: user, ItemID: ItemID(it), Type: event.Browse, TS: x.ts()})
	}
	return evs
}

func contains(s []int, v int) bool {
	for _, x := range s {
		if x == v {
			return true
		}
	}
	return false
}

// Events returns at least n events, whole visits.
func (x *Experiment) Events(n int) []event.Event {
	var out []event.Event
	for len(out) < n {
		out = append(out, x.Visit()...)
	}
	return out
}

// Truth returns what the visits so far planted, by user.
func (x *Experiment) Truth() map[string]*UserTruth { return x.truth }
