package scorer_test

import (
	"fmt"
	"strings"
	"testing"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/scorer"
)

// panicOf returns what f panicked with ("" if it returned).
func panicOf(f func()) (msg string) {
	defer func() {
		if r := recover(); r != nil {
			msg = fmt.Sprint(r)
		}
	}()
	f()
	return ""
}

// New and NewEASE take fully specified options: a zero where the scorer
// needs a value panics with the option's name; the options of the default
// configuration are complete.
func TestNewRejectsIncompleteOptions(t *testing.T) {
	def := scorer.OptionsFromConfig(config.Default())
	if msg := panicOf(func() { scorer.New(nil, def) }); msg != "" {
		t.Fatalf("default options: %s", msg)
	}
	for name, unset := range map[string]func(o *scorer.Options){
		"TopN":              func(o *scorer.Options) { o.TopN = 0 },
		"Neighbours":        func(o *scorer.Options) { o.Neighbours = 0 },
		"CandidateUsers":    func(o *scorer.Options) { o.CandidateUsers = 0 },
		"UsersPerItem":      func(o *scorer.Options) { o.UsersPerItem = 0 },
		"HistoryItems":      func(o *scorer.Options) { o.HistoryItems = 0 },
		"UserItems":         func(o *scorer.Options) { o.UserItems = 0 },
		"NeighbourItems":    func(o *scorer.Options) { o.NeighbourItems = 0 },
		"NextItems":         func(o *scorer.Options) { o.NextItems = 0 },
		"TrendingSize":      func(o *scorer.Options) { o.TrendingSize = 0 },
		"UserSimilarity":    func(o *scorer.Options) { o.UserSimilarity = "" },
		"ItemSimilarity":    func(o *scorer.Options) { o.ItemSimilarity = "" },
		"ListTTL":           func(o *scorer.Options) { o.ListTTL = 0 },
		"ModelName":         func(o *scorer.Options) { o.ModelName = "" },
		"TrendingRefresh":   func(o *scorer.Options) { o.TrendingRefresh = 0 },
		"Content.PerGroup":  func(o *scorer.Options) { o.Content.PerGroup = 0 },
		"Content.NewWindow": func(o *scorer.Options) { o.Content.NewWindow = 0 },
		"Weight*": func(o *scorer.Options) {
			o.WeightUserKNN, o.WeightItemKNN, o.WeightTrending, o.WeightContent = 0, 0, 0, 0
			o.WeightNew, o.WeightNext, o.WeightPopular, o.WeightEASE = 0, 0, 0, 0
		},
	} {
		o := def
		unset(&o)
		if msg := panicOf(func() { scorer.New(nil, o) }); !strings.Contains(msg, "Options."+name+" is") {
			t.Errorf("%s unset: New panicked with %q", name, msg)
		}
	}

	ease := scorer.EASEOptionsFromConfig(config.Default())
	if msg := panicOf(func() { scorer.NewEASE(ease) }); msg != "" {
		t.Fatalf("default EASE options: %s", msg)
	}
	for name, unset := range map[string]func(o *scorer.EASEOptions){
		"Lambda":    func(o *scorer.EASEOptions) { o.Lambda = 0 },
		"MaxItems":  func(o *scorer.EASEOptions) { o.MaxItems = 0 },
		"UserItems": func(o *scorer.EASEOptions) { o.UserItems = 0 },
		"Interval":  func(o *scorer.EASEOptions) { o.Interval = 0 },
	} {
		o := ease
		unset(&o)
		if msg := panicOf(func() { scorer.NewEASE(o) }); !strings.Contains(msg, "EASEOptions."+name+" is") {
			t.Errorf("%s unset: NewEASE panicked with %q", name, msg)
		}
	}
}

// OptionsFromConfig keeps a list no longer than its user's state: the list
// TTL is at most model.user_ttl.
func TestOptionsFromConfigBoundsListTTL(t *testing.T) {
	c := config.Default()
	if got := scorer.OptionsFromConfig(c).ListTTL; got != c.Scorer.ListTTL {
		t.Errorf("list TTL %v, want scorer.list_ttl %v", got, c.Scorer.ListTTL)
	}
	c.Model.UserTTL = c.Scorer.ListTTL / 2
	if got := scorer.OptionsFromConfig(c).ListTTL; got != c.Model.UserTTL {
		t.Errorf("list TTL %v, want model.user_ttl %v", got, c.Model.UserTTL)
	}
}
