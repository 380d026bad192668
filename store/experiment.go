package store

import (
	"context"
	_ "embed"
	"errors"
	"fmt"
	"sort"
	"strconv"
	"strings"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/event"
)

// Attribution and experiment counters.
//
// An impression and every attributed click, cart or purchase add to the
// global experiment counters (Keys.Experiment). What an event adds depends
// on the user's state when it was first applied (was the item shown, was
// the user exposed before), so the user half decides it under the user's
// fence (userstate.go) and stores the decision in the user's attribution log; the
// processor sums the decisions of a partition's events like trending
// weights and writes them with one script fenced per source partition
// (lua/experiment.lua). A replay reads the stored decisions of the events
// it finds fenced, so nothing is counted twice or lost.
//
// Counter fields are <variant>|<name>[|s|<source>|p|<position>]:
//
//	imp    impressions (lists shown)
//	shown  items shown; with |s|<source> and |p|<position> per source and position
//	users  users exposed (their first impression in the variant)
//	n2, nx the sums over users of n² and n·x (n items shown to, x clicks
//	       attributed to the user), for the variance of the click-through rate
//	x2     the sum over users of x²
//	click, add_to_cart, purchase  attributed to an impression (per source
//	       and position too); with |l appended: attributed through the
//	       user's current list, without impressions
//	click_users, add_to_cart_users, purchase_users  users with at least one
//	value  attributed purchases' value (|l: through the list)

var (
	//go:embed lua/experiment.lua
	experimentLua    string
	experimentScript = redis.NewScript(experimentLua)
)

// AttributionOptions configures attribution at ingest.
type AttributionOptions struct {
	// Window is how long after an item was shown an event of it is
	// attributed to the showing; 0 turns attribution (and the experiment
	// counters) off.
	Window time.Duration
	// NoListFallback turns off attributing to the user's current list
	// when the user has no impression within Window.
	NoListFallback bool
	// ShownCap is how many shown items are remembered per user.
	ShownCap int
	// RefreshOnImpression asks for the user's list to be rescored after an
	// impression (impression discounting needs it).
	RefreshOnImpression bool
}

// expAdd is one counter increment.
type expAdd struct {
	field string
	val   float64
}

// expEvent is what one event adds to the experiment counters.
type expEvent struct {
	off  int64
	adds []expAdd
}

// expAdds returns what op adds to the experiment counters given the user
// script's decision rec (an attribution record, entry.go), or nil when it
// adds nothing (or is malformed).
func expAdds(op Op, rec string) []expAdd {
	switch entryKind(rec) {
	case recImpression:
		r, err := parseImpressionRecord(rec)
		if err != nil || op.Shown == nil {
			return nil
		}
		v := r.Variant + "|"
		adds := []expAdd{{v + "imp", 1}, {v + "users", bitValue(r.First)}, {v + "n2", float64(r.DN2)}, {v + "nx", float64(r.DNX)}}
		met := make(map[string]bool, len(op.Shown.Items))
		k := 0
		for i, it := range op.Shown.Items {
			if met[it] {
				continue
			}
			met[it] = true
			k++
			src := ""
			if i < len(op.Shown.Sources) {
				src = op.Shown.Sources[i]
			}
			adds = append(adds, expAdd{v + "shown|s|" + src, 1}, expAdd{v + "shown|p|" + strconv.Itoa(i+1), 1})
		}
		return append(adds, expAdd{v + "shown", float64(k)})
	case recAttributed:
		r, err := parseAttributedRecord(rec)
		if err != nil {
			return nil
		}
		typ, v, pos := r.Type, r.Variant+"|", strconv.FormatInt(r.Position, 10)
		if r.Via == "l" {
			adds := []expAdd{{v + typ + "|l", 1}, {v + typ + "|l|s|" + r.Source, 1}, {v + typ + "|l|p|" + pos, 1}}
			if typ == event.Purchase.String() {
				adds = append(adds, expAdd{v + "value|l", op.Value})
			}
			return adds
		}
		adds := []expAdd{{v + typ, 1}, {v + typ + "|s|" + r.Source, 1}, {v + typ + "|p|" + pos, 1},
			{v + typ + "_users", bitValue(r.First)}, {v + "x2", float64(r.DX2)}, {v + "nx", float64(r.DNX)}}
		if typ == event.Purchase.String() {
			adds = append(adds, expAdd{v + "value", op.Value})
		}
		return adds
	}
	return nil
}

func bitValue(b bool) float64 {
	if b {
		return 1
	}
	return 0
}

// findRec returns the decision stored for the event at offset off of
// partition p in the attribution log ("" when none).
func findRec(attlog []string, off int64, p int32) string {
	for _, e := range attlog {
		if a, err := parseAttEntry(e); err == nil && a.Offset == off && a.Partition == p {
			return a.Record
		}
	}
	return ""
}

// experimentArgs returns experiment.lua's arguments for w's events after
// offset after: their increments summed per field, in the order first met.
func (w *ItemWork) experimentArgs(p string, after int64) []any {
	first, last := int64(-1), int64(-1)
	sums := make(map[string]float64)
	var order []string
	for _, e := range w.exp {
		if e.off <= after {
			continue
		}
		if first < 0 {
			first = e.off
		}
		last = e.off
		for _, a := range e.adds {
			if a.val == 0 {
				continue
			}
			if _, ok := sums[a.field]; !ok {
				order = append(order, a.field)
			}
			sums[a.field] += a.val
		}
	}
	args := make([]any, 0, 3+2*len(order))
	args = append(args, p, first, last)
	for _, f := range order {
		args = append(args, f, fmtFloat(sums[f]))
	}
	return args
}

// ReadExperiment returns the experiment counters: field -> value (see the
// field names above).
func (s *Store) ReadExperiment(ctx context.Context) (map[string]float64, error) {
	raw, err := s.rdb.HGetAll(ctx, s.keys.Experiment()).Result()
	if err != nil {
		return nil, fmt.Errorf("reading experiment counters: %w", err)
	}
	out := make(map[string]float64, len(raw))
	for k, v := range raw {
		x, err := strconv.ParseFloat(v, 64)
		if err != nil {
			return nil, fmt.Errorf("reading experiment counters: field %q: %w", k, err)
		}
		out[k] = x
	}
	return out, nil
}

// ShownItem is what the user's shown hash says about one item.
type ShownItem struct {
	Item    string
	TS      int64  // when last shown (unix ms; the list's event time when via list)
	Unseen  int    // times shown since the user last clicked it
	Done    int    // attributed kinds: 1 click, 2 add_to_cart, 4 purchase
	Pos     int    // 1-based position
	Via     string // "i" impression, "l" the user's list
	Variant string
	Source  string
}

// ReadShown returns what the user was shown, newest first.
func (s *Store) ReadShown(ctx context.Context, user string) ([]ShownItem, error) {
	raw, err := s.rdb.HGetAll(ctx, s.keys.UserShown(user)).Result()
	if err != nil {
		return nil, fmt.Errorf("reading shown items: %w", err)
	}
	out := make([]ShownItem, 0, len(raw))
	for it, v := range raw {
		if strings.HasPrefix(it, " ") {
			continue
		}
		if x, err := parseShownValue(v); err == nil {
			x.Item = it
			out = append(out, x)
		}
	}
	sort.Slice(out, func(i, j int) bool {
		if out[i].TS != out[j].TS {
			return out[i].TS > out[j].TS
		}
		return out[i].Item < out[j].Item
	})
	return out, nil
}

// ShownCounts returns, per user, how many times each item was shown to the
// user since the user last clicked it (items with a count above 0), for
// impression discounting: one pipelined HGETALL per call.
func (s *Store) ShownCounts(ctx context.Context, users []string) ([]map[string]int, error) {
	pipe := s.rdb.Pipeline()
	cmds := make([]*redis.MapStringStringCmd, len(users))
	for i, u := range users {
		cmds[i] = pipe.HGetAll(ctx, s.keys.UserShown(u))
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("reading shown items: %w", err)
	}
	out := make([]map[string]int, len(users))
	for i, c := range cmds {
		for it, v := range c.Val() {
			if strings.HasPrefix(it, " ") {
				continue
			}
			if x, err := parseShownValue(v); err == nil && x.Unseen > 0 {
				if out[i] == nil {
					out[i] = map[string]int{}
				}
				out[i][it] = x.Unseen
			}
		}
	}
	return out, nil
}
