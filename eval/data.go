package eval

import (
	"cmp"
	"errors"
	"slices"
	"sort"
)

// Event types of the clickstream. MovieLens ratings load as TypeClick.
const (
	TypeBrowse    = "browse"
	TypeClick     = "click"
	TypeAddToCart = "add_to_cart"
	TypePurchase  = "purchase"
)

// ErrNoData is returned when a protocol has nothing to evaluate.
var ErrNoData = errors.New("eval: no interactions to evaluate")

// Interaction is one user-item event of a log.
type Interaction struct {
	User, Item string
	// Type is one of "browse", "click", "add_to_cart", "purchase".
	Type string
	// TS is the event time in unix milliseconds.
	TS int64
	// Value is the rating, a price or 1 when the log has none.
	Value float64
}

// Dataset is an interaction log with optional item attributes.
type Dataset struct {
	// Interactions are sorted by TS; equal timestamps keep input order.
	Interactions []Interaction
	// ItemAttrs maps item -> attribute -> value, for example
	// {"genre": "Action|Comedy"} or {"category": "123"}. May be nil.
	ItemAttrs map[string]map[string]string
}

// NewDataset sorts in by time (stable, in place) and wraps it.
func NewDataset(in []Interaction, attrs map[string]map[string]string) *Dataset {
	SortByTime(in)
	return &Dataset{Interactions: in, ItemAttrs: attrs}
}

// SortByTime sorts in place by TS; interactions with equal timestamps keep
// their relative order, so "the last one in file order" stays last.
func SortByTime(in []Interaction) {
	slices.SortStableFunc(in, func(a, b Interaction) int { return cmp.Compare(a.TS, b.TS) })
}

// sortedCopy returns a time-sorted copy of in (stable).
func sortedCopy(in []Interaction) []Interaction {
	out := slices.Clone(in)
	SortByTime(out)
	return out
}

// Stats summarises a log.
type Stats struct {
	Interactions int
	Users        int
	Items        int
	// Density is Interactions / (Users*Items), counting repeats.
	Density float64
	// Pairs is the number of distinct user-item pairs.
	Pairs  int
	ByType map[string]int
	// FirstTS and LastTS are the smallest and largest timestamps.
	FirstTS, LastTS int64
}

// Describe computes Stats of a log.
func Describe(in []Interaction) Stats {
	s := Stats{Interactions: len(in), ByType: map[string]int{}}
	users := map[string]struct{}{}
	items := map[string]struct{}{}
	type pair struct{ u, i string }
	pairs := map[pair]struct{}{}
	for n, it := range in {
		users[it.User] = struct{}{}
		items[it.Item] = struct{}{}
		pairs[pair{it.User, it.Item}] = struct{}{}
		s.ByType[it.Type]++
		if n == 0 || it.TS < s.FirstTS {
			s.FirstTS = it.TS
		}
		if n == 0 || it.TS > s.LastTS {
			s.LastTS = it.TS
		}
	}
	s.Users, s.Items, s.Pairs = len(users), len(items), len(pairs)
	if s.Users > 0 && s.Items > 0 {
		s.Density = float64(s.Interactions) / (float64(s.Users) * float64(s.Items))
	}
	return s
}

// FilterMinCounts keeps the interactions of items with at least minItem
// interactions, then, among those, the interactions of users with at least
// minUser interactions. Each filter is a single pass (as in the published
// protocol), so an item may end below minItem after the user filter. Every
// interaction counts, repeats included. Order is preserved; a bound <= 1 is
// no filter.
func FilterMinCounts(in []Interaction, minItem, minUser int) []Interaction {
	itemN := map[string]int{}
	for _, it := range in {
		itemN[it.Item]++
	}
	kept := make([]Interaction, 0, len(in))
	for _, it := range in {
		if itemN[it.Item] >= minItem {
			kept = append(kept, it)
		}
	}
	userN := map[string]int{}
	for _, it := range kept {
		userN[it.User]++
	}
	out := kept[:0]
	for _, it := range kept {
		if userN[it.User] >= minUser {
			out = append(out, it)
		}
	}
	return out
}

// catalogue returns the sorted distinct items of in.
func catalogue(in []Interaction) []string {
	set := map[string]struct{}{}
	for _, it := range in {
		set[it.Item] = struct{}{}
	}
	out := make([]string, 0, len(set))
	for i := range set {
		out = append(out, i)
	}
	sort.Strings(out)
	return out
}
