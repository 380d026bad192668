package loadgen

import (
	"math/rand/v2"
	"slices"
	"strconv"
	"strings"
	"time"

	"github.com/recstream/recstream/event"
)

// SequenceOptions configures a sparse sequential log (NewSequence). Zero
// values take the defaults.
type SequenceOptions struct {
	Users  int     // distinct users (default 2000)
	Items  int     // distinct items (default 0.8·Users)
	MinLen int     // fewest events per user (default 5)
	MaxLen int     // most events per user (default 10)
	ZipfS  float64 // Zipf exponent of item popularity (default 1.1: a long tail)
	// Antecedents is the number of items with planted successors (the
	// consoles; default Items/40), drawn among the most popular quarter of
	// the items; each has Successors (default 3) successors (its
	// accessories), drawn among the other three quarters, so that
	// popularity does not find them. With Depth 2 (the default) each
	// successor has Successors successors of its own (a console, a
	// controller, a charging dock), also from the tail; Depth 1 plants
	// one level.
	Antecedents int
	Successors  int
	Depth       int
	// Follow is the probability that the event after an item with planted
	// successors is one of them (default 0.75); of n successors the k-th
	// (from 0) is chosen with probability 2^(n−1−k)/(2^n−1): 4/7, 2/7 and
	// 1/7 for three.
	Follow float64
	// Visit is the probability that an event that does not follow a
	// planted transition is on an antecedent (default 0.35); the rest are
	// drawn by popularity.
	Visit float64
	Seed  uint64
	// Start is the first event's time (default 2025-01-01 UTC); each user
	// starts at a random minute of the following Users minutes and acts
	// every Step (default 1 minute).
	Start time.Time
	Step  time.Duration
}

// Sequence is a sparse sequential log: short per-user sequences over a
// long-tail catalogue with planted next-item structure (successors that
// follow their antecedent). Its planted answer is Successors.
type Sequence struct {
	opt   SequenceOptions
	rng   *rand.Rand
	zipf  *rand.Zipf
	byPop []int         // item number by popularity rank
	succ  map[int][]int // antecedent -> successors, most likely first
	ante  []int
}

// NewSequence returns a sequence generator.
func NewSequence(opt SequenceOptions) *Sequence {
	if opt.Users <= 0 {
		opt.Users = 2000
	}
	if opt.Items <= 0 {
		opt.Items = max(40, opt.Users*4/5)
	}
	if opt.MinLen <= 0 {
		opt.MinLen = 5
	}
	if opt.MaxLen < opt.MinLen {
		opt.MaxLen = max(opt.MinLen, 10)
	}
	if opt.ZipfS <= 1 {
		opt.ZipfS = 1.1
	}
	if opt.Antecedents <= 0 {
		opt.Antecedents = max(1, opt.Items/40)
	}
	if opt.Successors <= 0 {
		opt.Successors = 3
	}
	if opt.Depth <= 0 {
		opt.Depth = 2
	}
	if opt.Follow <= 0 {
		opt.Follow = 0.75
	}
	if opt.Visit <= 0 {
		opt.Visit = 0.35
	}
	if opt.Start.IsZero() {
		opt.Start = time.Date(2025, 1, 1, 0, 0, 0, 0, time.UTC)
	}
	if opt.Step <= 0 {
		opt.Step = time.Minute
	}
	head := max(opt.Items/4, 1)
	per := 0 // tail items planted under one antecedent
	for d, n := 1, opt.Successors; d <= opt.Depth; d, n = d+1, n*opt.Successors {
		per += n
	}
	opt.Antecedents = max(1, min(opt.Antecedents, head, (opt.Items-head)/per))
	rng := rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x5851f42d4c957f2d))
	s := &Sequence{opt: opt, rng: rng, zipf: rand.NewZipf(rng, opt.ZipfS, 1, uint64(opt.Items-1)), succ: map[int][]int{}}
	s.byPop = rng.Perm(opt.Items)
	heads := rng.Perm(head)[:opt.Antecedents]
	tails := rng.Perm(opt.Items - head)
	next := 0 // the next unused tail item
	var plant func(a, depth int)
	plant = func(a, depth int) {
		for j := 0; j < opt.Successors; j++ {
			x := s.byPop[head+tails[next]]
			next++
			s.succ[a] = append(s.succ[a], x)
		}
		if depth > 1 {
			for _, x := range s.succ[a] {
				plant(x, depth-1)
			}
		}
	}
	for _, r := range heads {
		a := s.byPop[r]
		s.ante = append(s.ante, a)
		plant(a, opt.Depth)
	}
	return s
}

// Options returns the effective options.
func (s *Sequence) Options() SequenceOptions { return s.opt }

// Antecedents returns the first-level items with planted successors (the
// popular ones; with Depth 2 their successors have successors too).
func (s *Sequence) Antecedents() []string {
	out := make([]string, len(s.ante))
	for i, a := range s.ante {
		out[i] = ItemID(a)
	}
	return out
}

// Successors returns the planted successors of item, most likely first
// (nil for an item without).
func (s *Sequence) Successors(item string) []string {
	n, err := strconv.Atoi(strings.TrimPrefix(item, "i"))
	if err != nil || !strings.HasPrefix(item, "i") || s.succ[n] == nil {
		return nil
	}
	out := make([]string, len(s.succ[n]))
	for i, x := range s.succ[n] {
		out[i] = ItemID(x)
	}
	return out
}

// successor picks one of a's n successors, the k-th with probability
// 2^(n−1−k)/(2^n−1).
func (s *Sequence) successor(a int) int {
	ss := s.succ[a]
	x := s.rng.Float64() * float64(int(1)<<len(ss)-1)
	for k := range ss {
		w := float64(int(1) << (len(ss) - 1 - k))
		if x < w {
			return ss[k]
		}
		x -= w
	}
	return ss[len(ss)-1]
}

// eventType draws a type: mostly browses; a successor that followed its
// antecedent is bought a third of the time.
func (s *Sequence) eventType(followed bool) event.Type {
	x := s.rng.Float64()
	if followed && x < 0.33 {
		return event.Purchase
	}
	switch {
	case x < 0.70:
		return event.Browse
	case x < 0.88:
		return event.Click
	case x < 0.97:
		return event.AddToCart
	default:
		return event.Purchase
	}
}

// Events returns the whole log, in time order: for each user a sequence of
// MinLen to MaxLen events in which an item with planted successors is
// followed by one of them with probability Follow, every other event being
// a first-level antecedent (Visit) or an item drawn by popularity.
func (s *Sequence) Events() []event.Event {
	o := s.opt
	var out []event.Event
	for u := 0; u < o.Users; u++ {
		n := o.MinLen + s.rng.IntN(o.MaxLen-o.MinLen+1)
		start := o.Start.Add(time.Duration(s.rng.IntN(o.Users)) * time.Minute)
		prev := -1
		for k := 0; k < n; k++ {
			var item int
			followed := false
			switch {
			case prev >= 0 && s.succ[prev] != nil && s.rng.Float64() < o.Follow:
				item, followed = s.successor(prev), true
			case s.rng.Float64() < o.Visit:
				item = s.ante[s.rng.IntN(len(s.ante))]
			default:
				item = s.byPop[s.zipf.Uint64()]
			}
			out = append(out, event.Event{UserID: UserID(u), ItemID: ItemID(item), Type: s.eventType(followed),
				TS: start.Add(time.Duration(k) * o.Step).UnixMilli()})
			prev = item
		}
	}
	slices.SortStableFunc(out, func(a, b event.Event) int {
		switch {
		case a.TS < b.TS:
			return -1
		case a.TS > b.TS:
			return 1
		}
		return 0
	})
	return out
}
