package eval

import (
	"context"
	"fmt"
	"io"
	"math"
	"math/rand/v2"
	"slices"
	"strings"
	"time"
)

// Protocol names as they appear in Result.Protocol.
const (
	ProtocolLeaveOneOut = "loo"
	ProtocolFullRanking = "full"
	ProtocolPrequential = "prequential"
)

// DefaultNegatives is the number of sampled negatives of the published
// protocol.
const DefaultNegatives = 99

// negStream is the second PCG seed word of negative sampling; the first is
// Config.Seed.
const negStream = 0x5eed_0f_4e6a71e5

// Split is a leave-one-out split.
type Split struct {
	// Train is every interaction but the held-out ones, in time order.
	Train []Interaction
	// Test holds one held-out interaction per evaluated user, ordered by
	// user id.
	Test []Interaction
	// Negatives are the items each test user's held-out item is ranked
	// against under LeaveOneOut; nil means "sample them".
	Negatives map[string][]string
}

// HoldoutTies says which of a user's interactions sharing the latest
// timestamp the leave-one-out split holds out. Timestamps in seconds tie
// often: in ML-100K 44% of the users rated several movies in their last
// second, and the rule moves HR@10 of popularity by about 0.06.
type HoldoutTies int

const (
	// TiesLastInInput holds out the last of them in input order (the
	// default).
	TiesLastInInput HoldoutTies = iota
	// TiesFirstSeenItem holds out the one whose item appears first in the
	// input. It is the rule of the reference code of Ferrari Dacrema et al.
	// (numpy argmax over a user's items, numbered in order of first
	// appearance in the log), so the published ML-100K numbers use it.
	TiesFirstSeenItem
)

func (t HoldoutTies) String() string {
	switch t {
	case TiesLastInInput:
		return "last-in-input"
	case TiesFirstSeenItem:
		return "first-seen-item"
	}
	return fmt.Sprintf("HoldoutTies(%d)", int(t))
}

// SplitLeaveOneOut holds out each user's latest interaction by timestamp;
// among equal timestamps the last one in input order is the latest. Users
// with a single interaction stay in Train and are not evaluated. in is not
// modified.
func SplitLeaveOneOut(in []Interaction) *Split { return SplitLeaveOneOutTies(in, TiesLastInInput) }

// SplitLeaveOneOutTies is SplitLeaveOneOut with a rule for equal latest
// timestamps.
func SplitLeaveOneOutTies(in []Interaction, ties HoldoutTies) *Split {
	firstSeen := map[string]int{}
	if ties == TiesFirstSeenItem {
		for n, it := range in {
			if _, ok := firstSeen[it.Item]; !ok {
				firstSeen[it.Item] = n
			}
		}
	}
	s := sortedCopy(in)
	last := map[string]int{}
	count := map[string]int{}
	for n, it := range s {
		count[it.User]++
		if p, ok := last[it.User]; ok && ties == TiesFirstSeenItem && s[p].TS == it.TS &&
			firstSeen[s[p].Item] < firstSeen[it.Item] {
			continue
		}
		last[it.User] = n
	}
	hold := make([]bool, len(s))
	for u, n := range last {
		if count[u] >= 2 {
			hold[n] = true
		}
	}
	sp := &Split{Train: make([]Interaction, 0, len(s)-len(last))}
	for n, it := range s {
		if hold[n] {
			sp.Test = append(sp.Test, it)
		} else {
			sp.Train = append(sp.Train, it)
		}
	}
	slices.SortFunc(sp.Test, func(a, b Interaction) int { return strings.Compare(a.User, b.User) })
	return sp
}

// Validation carves a validation split from the training data alone: each
// user's latest training interaction is held out. The test split is not
// looked at.
func (s *Split) Validation() *Split { return SplitLeaveOneOut(s.Train) }

// Items returns the catalogue of the split: every item of Train and Test,
// sorted.
func (s *Split) Items() []string {
	all := make([]Interaction, 0, len(s.Train)+len(s.Test))
	all = append(append(all, s.Train...), s.Test...)
	return catalogue(all)
}

// SampleNegatives draws, for each test user in Test order, n items sampled
// uniformly without replacement from the catalogue items the user never
// interacted with (in Train or Test), using a math/rand/v2 PCG seeded with
// (seed, a fixed stream constant). A user with fewer than n such items gets
// all of them. It replaces s.Negatives.
func (s *Split) SampleNegatives(n int, seed uint64) {
	items := s.Items()
	idx := make(map[string]int, len(items))
	for i, it := range items {
		idx[it] = i
	}
	seen := map[string]map[int]bool{}
	mark := func(it Interaction) {
		m := seen[it.User]
		if m == nil {
			m = map[int]bool{}
			seen[it.User] = m
		}
		m[idx[it.Item]] = true
	}
	for _, it := range s.Train {
		mark(it)
	}
	for _, it := range s.Test {
		mark(it)
	}
	rng := rand.New(rand.NewPCG(seed, negStream))
	s.Negatives = make(map[string][]string, len(s.Test))
	var pool []int
	for _, t := range s.Test {
		had := seen[t.User]
		avail := len(items) - len(had)
		var neg []string
		switch {
		case avail < 2*n:
			// Small pool: partial Fisher-Yates over the unseen items.
			pool = pool[:0]
			for i := range items {
				if !had[i] {
					pool = append(pool, i)
				}
			}
			take := min(n, len(pool))
			for k := range take {
				j := k + rng.IntN(len(pool)-k)
				pool[k], pool[j] = pool[j], pool[k]
			}
			for _, i := range pool[:take] {
				neg = append(neg, items[i])
			}
		default:
			chosen := make(map[int]bool, n)
			for len(neg) < n {
				i := rng.IntN(len(items))
				if had[i] || chosen[i] {
					continue
				}
				chosen[i] = true
				neg = append(neg, items[i])
			}
		}
		s.Negatives[t.User] = neg
	}
}

// Config configures LeaveOneOut and FullRanking.
type Config struct {
	// Ks are the cutoffs; empty means {10}.
	Ks []int
	// Negatives is the number of sampled negatives (LeaveOneOut); 0 means 99.
	Negatives int
	// Seed seeds negative sampling.
	Seed uint64
	// Ties picks the held-out interaction among a user's interactions with
	// the latest timestamp (LeaveOneOut, FullRanking and Tune).
	Ties HoldoutTies
	// SkipRepeats leaves out users whose held-out item is also among their
	// training interactions (repeat consumption, common in clickstreams,
	// where item-item models then win by recommending what the user already
	// has). Off by default, as in the published protocol.
	SkipRepeats bool
	// NoLists skips the TopK list of each test user, and so the coverage and
	// popularity metrics.
	NoLists bool
	// Progress receives a progress bar per model; nil for none.
	Progress io.Writer
}

func (c Config) negatives() int {
	if c.Negatives <= 0 {
		return DefaultNegatives
	}
	return c.Negatives
}

// Result is what a protocol measured for one model.
type Result struct {
	Model    string
	Protocol string
	// K are the cutoffs of the metrics.
	K []int
	// Metrics maps "hr@10", "ndcg@10", "precision@10", "recall@10", "mrr",
	// "coverage@10", "popularity@10" and "popularity_norm@10" (for each K)
	// to their values.
	Metrics map[string]float64
	// Users is the number of evaluated users.
	Users int
	// Events is the number of evaluated cases: one per user for the
	// leave-one-out protocols, one per scored interaction for prequential.
	Events int
	// FitSeconds and EvalSeconds are wall-clock times.
	FitSeconds, EvalSeconds float64
	// Windows are the per-window results of the prequential protocol.
	Windows []WindowResult
}

// WindowResult is one time window of the prequential protocol.
type WindowResult struct {
	Index int
	// FromTS and ToTS are the first and last timestamps in the window.
	FromTS, ToTS int64
	// Interactions is the number of interactions in the window, Events the
	// number evaluated.
	Interactions, Events int
	Metrics              map[string]float64
}

// LeaveOneOut holds out each user's latest interaction (SplitLeaveOneOut),
// samples cfg.Negatives items per user that the user never interacted with,
// fits each model on the rest and ranks the held-out item among itself and
// its negatives by model score, ties counting against it.
func LeaveOneOut(ctx context.Context, data []Interaction, models []Model, cfg Config) ([]Result, error) {
	s := SplitLeaveOneOutTies(data, cfg.Ties)
	s.SampleNegatives(cfg.negatives(), cfg.Seed)
	return LeaveOneOutSplit(ctx, s, models, cfg)
}

// LeaveOneOutSplit evaluates models on a given split, such as a published
// NCF split; negatives are sampled first when s.Negatives is nil.
func LeaveOneOutSplit(ctx context.Context, s *Split, models []Model, cfg Config) ([]Result, error) {
	if s.Negatives == nil {
		s.SampleNegatives(cfg.negatives(), cfg.Seed)
	}
	return evaluateSplit(ctx, s, models, cfg, false)
}

// FullRanking uses the same split as LeaveOneOut but ranks each held-out
// item among every catalogue item the user has no training interaction
// with, ties counting against it.
func FullRanking(ctx context.Context, data []Interaction, models []Model, cfg Config) ([]Result, error) {
	return FullRankingSplit(ctx, SplitLeaveOneOutTies(data, cfg.Ties), models, cfg)
}

// FullRankingSplit is FullRanking on a given split.
func FullRankingSplit(ctx context.Context, s *Split, models []Model, cfg Config) ([]Result, error) {
	return evaluateSplit(ctx, s, models, cfg, true)
}

func evaluateSplit(ctx context.Context, s *Split, models []Model, cfg Config, full bool) ([]Result, error) {
	ks, err := normKs(cfg.Ks)
	if err != nil {
		return nil, err
	}
	if len(s.Test) == 0 {
		return nil, ErrNoData
	}
	proto := ProtocolLeaveOneOut
	if full {
		proto = ProtocolFullRanking
	}
	items := s.Items()
	trainSeen := map[string]map[string]bool{}
	pop := map[string]float64{}
	maxPop := 0.0
	for _, it := range s.Train {
		m := trainSeen[it.User]
		if m == nil {
			m = map[string]bool{}
			trainSeen[it.User] = m
		}
		m[it.Item] = true
		pop[it.Item]++
		maxPop = max(maxPop, pop[it.Item])
	}
	popOf := func(i string) float64 { return pop[i] }
	maxK := ks[len(ks)-1]
	tests := s.Test
	if cfg.SkipRepeats {
		tests = nil
		for _, t := range s.Test {
			if !trainSeen[t.User][t.Item] {
				tests = append(tests, t)
			}
		}
		if len(tests) == 0 {
			return nil, ErrNoData
		}
	}
	var out []Result
	for _, m := range models {
		r := Result{Model: m.Name(), Protocol: proto, K: ks, Users: len(tests), Events: len(tests)}
		t0 := time.Now()
		if err := m.Fit(ctx, s.Train); err != nil {
			return nil, fmt.Errorf("%s: fit %s: %w", proto, m.Name(), err)
		}
		t1 := time.Now()
		acc := newAccumulator(ks)
		bar := NewProgress(cfg.Progress, proto+" "+m.Name(), len(tests))
		cands := make([]string, 0, len(items))
		for _, t := range tests {
			if err := ctx.Err(); err != nil {
				return nil, err
			}
			seen := trainSeen[t.User]
			cands = append(cands[:0], t.Item)
			if full {
				for _, i := range items {
					if i != t.Item && !seen[i] {
						cands = append(cands, i)
					}
				}
			} else {
				negs, ok := s.Negatives[t.User]
				if !ok {
					return nil, fmt.Errorf("%s: user %q has no negatives", proto, t.User)
				}
				cands = append(cands, negs...)
			}
			scores, err := m.Score(ctx, t.User, cands)
			if err != nil {
				return nil, fmt.Errorf("%s: %s: score user %q: %w", proto, m.Name(), t.User, err)
			}
			if len(scores) != len(cands) {
				return nil, fmt.Errorf("%s: %s: %d scores for %d candidates", proto, m.Name(), len(scores), len(cands))
			}
			acc.addRank(Rank(scores[0], scores[1:]))
			if !cfg.NoLists {
				list, err := m.TopK(ctx, t.User, maxK, seen)
				if err != nil {
					return nil, fmt.Errorf("%s: %s: top-k user %q: %w", proto, m.Name(), t.User, err)
				}
				acc.addList(list, popOf, maxPop)
			}
			bar.Add(1)
		}
		bar.Done()
		r.Metrics = acc.metrics(len(items), !cfg.NoLists)
		r.FitSeconds, r.EvalSeconds = t1.Sub(t0).Seconds(), time.Since(t1).Seconds()
		out = append(out, r)
	}
	return out, nil
}

// PrequentialConfig configures Prequential.
type PrequentialConfig struct {
	// Ks are the cutoffs; empty means {10}. Lists have the largest K items.
	Ks []int
	// Windows is the number of equal-count windows of the reported time
	// series; 0 means 10.
	Windows int
	// Warmup interactions (the earliest) are given to Fit and not evaluated.
	Warmup int
	// Stride evaluates one eligible interaction in Stride (0 or 1: all);
	// every interaction is still learnt.
	Stride int
	// IncludeRepeats also evaluates interactions with an item the user
	// already had, and then does not exclude seen items from the lists. By
	// default such interactions are only learnt, and lists exclude the
	// user's items.
	IncludeRepeats bool
	// Progress receives a progress bar per model; nil for none.
	Progress io.Writer
	// Impressions simulates impressions: every list asked for is shown to
	// the user (given to a model that is an Impressioner) before the
	// interaction is learnt.
	Impressions bool
}

// Impressioner is a Learner that also learns what a user was shown.
type Impressioner interface {
	ObserveImpression(ctx context.Context, user string, items []string, ts int64) error
}

// Prequential replays data in time order (test-then-learn): for each
// interaction of a user with history, the model's top-K list for that user
// is asked for and the rank of the actual item in it recorded (a miss when
// absent, so MRR is truncated at the largest K); then the interaction is
// given to Observe. Coverage and popularity use the catalogue of all of data
// and item counts so far. Metrics are reported overall and per window.
func Prequential(ctx context.Context, data []Interaction, models []Learner, cfg PrequentialConfig) ([]Result, error) {
	ks, err := normKs(cfg.Ks)
	if err != nil {
		return nil, err
	}
	s := sortedCopy(data)
	warm := min(max(cfg.Warmup, 0), len(s))
	stream := s[warm:]
	if len(stream) == 0 {
		return nil, ErrNoData
	}
	nw := cfg.Windows
	if nw <= 0 {
		nw = 10
	}
	nw = min(nw, len(stream))
	stride := max(cfg.Stride, 1)
	nItems := len(catalogue(s))
	maxK := ks[len(ks)-1]
	var out []Result
	for _, m := range models {
		r := Result{Model: m.Name(), Protocol: ProtocolPrequential, K: ks}
		t0 := time.Now()
		if err := m.Fit(ctx, s[:warm]); err != nil {
			return nil, fmt.Errorf("prequential: fit %s: %w", m.Name(), err)
		}
		t1 := time.Now()
		seen := map[string]map[string]bool{}
		count := map[string]float64{}
		maxCount := 0.0
		learn := func(it Interaction) {
			h := seen[it.User]
			if h == nil {
				h = map[string]bool{}
				seen[it.User] = h
			}
			h[it.Item] = true
			count[it.Item]++
			maxCount = max(maxCount, count[it.Item])
		}
		for _, it := range s[:warm] {
			learn(it)
		}
		popOf := func(i string) float64 { return count[i] }
		acc := newAccumulator(ks)
		wins := make([]*accumulator, nw)
		r.Windows = make([]WindowResult, nw)
		for w := range wins {
			wins[w] = newAccumulator(ks)
			r.Windows[w].Index = w
		}
		users := map[string]bool{}
		eligible := 0
		bar := NewProgress(cfg.Progress, "prequential "+m.Name(), len(stream))
		for pos, it := range stream {
			if pos&0xff == 0 {
				if err := ctx.Err(); err != nil {
					return nil, err
				}
			}
			w := pos * nw / len(stream)
			wr := &r.Windows[w]
			if wr.Interactions == 0 {
				wr.FromTS = it.TS
			}
			wr.Interactions++
			wr.ToTS = it.TS
			hist := seen[it.User]
			if len(hist) > 0 && (cfg.IncludeRepeats || !hist[it.Item]) {
				eligible++
				if (eligible-1)%stride == 0 {
					excl := hist
					if cfg.IncludeRepeats {
						excl = nil
					}
					list, err := m.TopK(ctx, it.User, maxK, excl)
					if err != nil {
						return nil, fmt.Errorf("prequential: %s: top-k user %q: %w", m.Name(), it.User, err)
					}
					rank := slices.Index(list, it.Item) + 1
					acc.addRank(rank)
					acc.addList(list, popOf, maxCount)
					wins[w].addRank(rank)
					wins[w].addList(list, popOf, maxCount)
					wr.Events++
					users[it.User] = true
					if im, ok := m.(Impressioner); ok && cfg.Impressions && len(list) > 0 {
						if err := im.ObserveImpression(ctx, it.User, list, it.TS); err != nil {
							return nil, fmt.Errorf("prequential: %s: impression: %w", m.Name(), err)
						}
					}
				}
			}
			if err := m.Observe(ctx, it); err != nil {
				return nil, fmt.Errorf("prequential: %s: observe: %w", m.Name(), err)
			}
			learn(it)
			bar.Add(1)
		}
		bar.Done()
		r.Metrics = acc.metrics(nItems, true)
		r.Users, r.Events = len(users), acc.n
		for w := range wins {
			r.Windows[w].Metrics = wins[w].metrics(nItems, true)
		}
		r.FitSeconds, r.EvalSeconds = t1.Sub(t0).Seconds(), time.Since(t1).Seconds()
		out = append(out, r)
	}
	return out, nil
}

// finite replaces NaN and ±Inf with 0 (for output).
func finite(x float64) (float64, bool) {
	if math.IsNaN(x) || math.IsInf(x, 0) {
		return 0, false
	}
	return x, true
}
