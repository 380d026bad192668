package scorer

import (
	"github.com/recstream/recstream/config"
)

// OptionsFromConfig returns the scorer options of a configuration: the
// scorer section, the user vector cap of the model section and impression
// discounting. Catalog, EASE, Shown, Now and Logger are left to the
// caller. A list never outlives its user's state: the list TTL is at most
// model.user_ttl.
func OptionsFromConfig(c config.Config) Options {
	s := c.Scorer
	o := Options{
		TopN:           s.TopN,
		Neighbours:     s.Neighbours,
		CandidateUsers: s.CandidateUsers,
		HistoryItems:   s.HistoryItems,
		RecentEvents:   s.RecentEvents,
		RecencyBoost:   s.RecencyBoost,
		UserItems:      c.Model.UserItemsCap,
		UserSimilarity: s.UserSimilarity,
		ItemSimilarity: s.ItemSimilarity,
		Shrinkage:      s.Shrinkage,
		WeightUserKNN:  s.Weights.UserKNN,
		WeightItemKNN:  s.Weights.ItemKNN,
		WeightTrending: s.Weights.Trending,
		WeightEASE:     s.Weights.EASE,
		WeightContent:  s.Weights.Content,
		WeightNew:      s.Weights.NewArrivals,
		WeightNext:     s.Weights.NextItem,
		NextSeeds:      s.RecentEvents,
		NextItems:      s.NextItems,
		WeightPopular:  s.Weights.Popular,
		ItemNeighbours: s.ItemNeighbours,
		UsersPerItem:   s.UsersPerItem,
		NeighbourItems: s.NeighbourItems,
		MaxPerCategory: s.MaxPerCategory,
		NewSlots:       s.NewArrivalSlots,
		Content: ContentOptions{
			Categories: s.ContentCategories,
			Brands:     s.ContentBrands,
			PerGroup:   s.ContentCandidates,
			NewWindow:  s.NewArrivalWindow,
		},
		ExcludeSeen:         s.ExcludeSeen,
		ListTTL:             s.ListTTL,
		ModelName:           s.ModelName,
		TrendingSize:        s.TrendingItems,
		TrendingRefresh:     s.TrendingRefresh,
		NeighbourTTL:        s.NeighbourTTL,
		DegreeTTL:           s.NeighbourTTL,
		ImpressionDiscount:  c.Attribution.Discount,
		ItemNeighbourBudget: s.ItemNeighbourBudget,
	}
	if u := c.Model.UserTTL; u > 0 && o.ListTTL > u {
		o.ListTTL = u
	}
	return o
}

// EASEOptionsFromConfig returns the EASE model's options of a
// configuration.
func EASEOptionsFromConfig(c config.Config) EASEOptions {
	return EASEOptions{
		Lambda:    c.Scorer.EASELambda,
		MaxItems:  c.Scorer.EASEMaxItems,
		RowItems:  c.Scorer.EASERowItems,
		UserItems: c.Model.UserItemsCap,
		Interval:  c.Scorer.EASERefresh,
	}
}
