// Package testopts gives tests complete store, scorer and EASE options:
// those of config.Default(), with what would blur a test of one part
// turned off, changed by a function the test passes (nil: none).
package testopts

import (
	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// Store returns the default store options with no key prefix, no expiry
// and attribution off, changed by set.
func Store(set func(o *store.Options)) store.Options {
	o := store.OptionsFromConfig(config.Default())
	o.Prefix, o.UserTTL = "", 0
	o.Attribution = store.AttributionOptions{ShownCap: o.Attribution.ShownCap}
	if set != nil {
		set(&o)
	}
	return o
}

// Scorer returns the default scorer options with every source weight 0,
// no recency boost, no item-kNN budget, no reuse of reads, seen items
// kept, no places reserved for new arrivals and no impression
// discounting, changed by set. Set must turn a source on: scorer.New
// panics when every weight is 0.
func Scorer(set func(o *scorer.Options)) scorer.Options {
	o := scorer.OptionsFromConfig(config.Default())
	o.WeightUserKNN, o.WeightItemKNN, o.WeightTrending, o.WeightEASE = 0, 0, 0, 0
	o.WeightContent, o.WeightNew, o.WeightNext, o.WeightPopular = 0, 0, 0, 0
	o.RecencyBoost, o.ItemNeighbourBudget = 0, 0
	o.NeighbourTTL, o.DegreeTTL = 0, 0
	o.ExcludeSeen, o.NewSlots, o.ImpressionDiscount = false, 0, 0
	if set != nil {
		set(&o)
	}
	return o
}

// Hybrid turns on user-kNN and item-kNN (weight 1 each) and trending
// (0.05): for Scorer, when a test is about the blend rather than a source.
func Hybrid(o *scorer.Options) {
	o.WeightUserKNN, o.WeightItemKNN, o.WeightTrending = 1, 1, 0.05
}

// EASE returns the default EASE options changed by set.
func EASE(set func(o *scorer.EASEOptions)) scorer.EASEOptions {
	o := scorer.EASEOptionsFromConfig(config.Default())
	if set != nil {
		set(&o)
	}
	return o
}
