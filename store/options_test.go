package store_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/store"
)

// New takes fully specified options: a zero where the store needs a value
// panics with the option's name; the options of the default configuration
// are complete.
func TestNewRejectsIncompleteOptions(t *testing.T) {
	def := store.OptionsFromConfig(config.Default())
	store.New(nil, def)
	for name, unset := range map[string]func(o *store.Options){
		"Weights":              func(o *store.Options) { o.Weights = nil },
		"HalfLife":             func(o *store.Options) { o.HalfLife = 0 },
		"Epoch":                func(o *store.Options) { o.Epoch = time.Time{} },
		"UserItemsCap":         func(o *store.Options) { o.UserItemsCap = 0 },
		"UserLogCap":           func(o *store.Options) { o.UserLogCap = 0 },
		"ItemUsersCap":         func(o *store.Options) { o.ItemUsersCap = 0 },
		"CoocCap":              func(o *store.Options) { o.CoocCap = 0 },
		"CoocHistory":          func(o *store.Options) { o.CoocHistory = 0 },
		"CoocFold":             func(o *store.Options) { o.CoocFold = 0 },
		"NextCap":              func(o *store.Options) { o.NextCap = 0 },
		"NextWindow":           func(o *store.Options) { o.NextWindow = -1 },
		"TrendingCap":          func(o *store.Options) { o.TrendingCap = 0 },
		"Attribution.ShownCap": func(o *store.Options) { o.Attribution.ShownCap = 0 },
	} {
		o := def
		unset(&o)
		got := func() (msg string) {
			defer func() { msg = fmt.Sprint(recover()) }()
			store.New(nil, o)
			return ""
		}()
		if !strings.Contains(got, "Options."+name+" is") {
			t.Errorf("%s unset: New panicked with %q", name, got)
		}
	}
}

// model.next_window 0 keeps no transitions: the store writes no next-item
// rows, and with the default window it does.
func TestNextWindowZeroKeepsNoTransitions(t *testing.T) {
	rdb := redistest.Start(t).Client(t)
	ctx := context.Background()
	for _, window := range []int{0, 3} {
		o := store.OptionsFromConfig(config.Default())
		o.Prefix, o.NextWindow = fmt.Sprintf("nw%d:", window), window
		st := store.New(rdb, o)
		ts := time.Now().UnixMilli()
		var ops []store.Op
		for i, it := range []string{"a", "b", "c", "d"} {
			ops = append(ops, store.Op{Offset: int64(i), User: "u", Item: it, Type: event.Click, TS: ts + int64(i)})
		}
		if _, err := st.Apply(ctx, 0, ops); err != nil {
			t.Fatal(err)
		}
		next, err := st.NextItems(ctx, []string{"a", "b", "c"}, 10)
		if err != nil {
			t.Fatal(err)
		}
		n := 0
		for _, row := range next {
			n += len(row)
		}
		if window == 0 && n != 0 || window > 0 && n == 0 {
			t.Errorf("next_window %d: %d transitions stored", window, n)
		}
	}
}
