package scorer

import "github.com/recstream/recstream/config"

// SetMaxNumbered bounds how many items or users s numbers before it starts
// a new numbering.
func SetMaxNumbered(s *Scorer, n int) { s.maxNumbered = n }

// Numbering identifies the numbering s works with now.
func Numbering(s *Scorer) any { return s.num.Load() }

// testOptions returns the options of the default configuration with the
// settings of testopts.Scorer (which this package's own tests cannot
// import) and its Hybrid weights, changed by set (nil: none).
func testOptions(set func(o *Options)) Options {
	o := OptionsFromConfig(config.Default())
	o.WeightUserKNN = 1
	o.WeightItemKNN = 1
	o.WeightTrending = 0.05
	o.WeightEASE = 0
	o.WeightContent = 0
	o.WeightNew = 0
	o.WeightNext = 0
	o.WeightPopular = 0
	o.RecencyBoost, o.ItemNeighbourBudget = 0, 0
	o.NeighbourTTL, o.DegreeTTL = 0, 0
	o.ExcludeSeen, o.NewSlots, o.ImpressionDiscount = false, 0, 0
	if set != nil {
		set(&o)
	}
	return o
}
