package scorer

import (
	"context"
	"errors"
	"fmt"
	"hash/fnv"
	"math"

	"github.com/prometheus/client_golang/prometheus"
	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/store"
)

// Buckets is the resolution of variant assignment: a user falls in bucket
// hash(salt, user) mod Buckets, and each variant owns a contiguous range of
// buckets proportional to its share.
const Buckets = 10000

// Variant is one named scorer configuration of an A/B test.
type Variant struct {
	Name   string
	Share  float64 // relative traffic share, > 0
	Scorer *Scorer
}

// Variants splits users between several scorers deterministically: user u
// gets the variant whose bucket range holds Bucket(salt, u). Ranges are laid
// out in the configured order, so changing the shares moves only the users
// whose buckets lie between the old and the new boundaries.
type Variants struct {
	salt  string
	vs    []Variant
	upper []int // exclusive upper bucket of each variant

	lists *prometheus.CounterVec
	items *prometheus.CounterVec
}

// NewVariants returns the splitter; reg (may be nil) receives the
// per-variant metrics recstream_variant_lists_total{variant} and
// recstream_variant_items_total{variant,source}.
func NewVariants(salt string, vs []Variant, reg prometheus.Registerer) (*Variants, error) {
	if len(vs) == 0 {
		return nil, errors.New("variants: none configured")
	}
	total := 0.0
	seen := map[string]bool{}
	for _, v := range vs {
		if v.Name == "" || seen[v.Name] {
			return nil, fmt.Errorf("variants: empty or duplicate name %q", v.Name)
		}
		seen[v.Name] = true
		if !(v.Share > 0) || math.IsInf(v.Share, 0) || v.Scorer == nil {
			return nil, fmt.Errorf("variants: %s: share must be > 0 and a scorer set", v.Name)
		}
		if v.Scorer.opt.ListTTL != vs[0].Scorer.opt.ListTTL {
			return nil, fmt.Errorf("variants: %s: list TTL %v differs from %s's %v", v.Name, v.Scorer.opt.ListTTL, vs[0].Name, vs[0].Scorer.opt.ListTTL)
		}
		total += v.Share
	}
	x := &Variants{salt: salt, vs: vs, upper: make([]int, len(vs))}
	cum := 0.0
	for i, v := range vs {
		cum += v.Share
		x.upper[i] = int(math.Round(Buckets * cum / total))
	}
	x.upper[len(vs)-1] = Buckets
	x.lists = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recstream_variant_lists_total", Help: "User lists written, by A/B variant.",
	}, []string{"variant"})
	x.items = prometheus.NewCounterVec(prometheus.CounterOpts{
		Name: "recstream_variant_items_total", Help: "Items in written user lists, by A/B variant and the source that contributed most.",
	}, []string{"variant", "source"})
	if reg != nil {
		reg.MustRegister(x.lists, x.items)
	}
	for _, v := range vs {
		x.lists.WithLabelValues(v.Name)
		for _, src := range sourceNames {
			x.items.WithLabelValues(v.Name, src)
		}
	}
	return x, nil
}

// Bucket returns the user's bucket in [0, Buckets): FNV-1a 64 of
// salt + "\x00" + user, modulo Buckets.
func Bucket(salt, user string) int {
	h := fnv.New64a()
	_, _ = h.Write([]byte(salt))
	_, _ = h.Write([]byte{0})
	_, _ = h.Write([]byte(user))
	return int(h.Sum64() % Buckets)
}

// Assign returns the name of the user's variant.
func (x *Variants) Assign(user string) string { return x.vs[x.index(user)].Name }

// Rank ranks items for the user with the scorer of the user's variant.
func (x *Variants) Rank(ctx context.Context, user string, items []string) ([]store.ListItem, error) {
	return x.vs[x.index(user)].Scorer.Rank(ctx, user, items)
}

func (x *Variants) index(user string) int {
	b := Bucket(x.salt, user)
	for i, u := range x.upper {
		if b < u {
			return i
		}
	}
	return len(x.vs) - 1
}

// Refresh scores each user with their variant's scorer and writes the
// lists as Scorer.Refresh does, each carrying the variant name.
func (x *Variants) Refresh(ctx context.Context, users []string) ([]store.List, error) {
	groups := make([][]string, len(x.vs))
	for _, u := range users {
		i := x.index(u)
		groups[i] = append(groups[i], u)
	}
	res := make([][]store.List, len(x.vs))
	g, gctx := errgroup.WithContext(ctx)
	for i, us := range groups {
		if len(us) == 0 {
			continue
		}
		g.Go(func() error {
			lists, err := x.vs[i].Scorer.Recommend(gctx, us)
			if err != nil {
				return err
			}
			for k := range lists {
				lists[k].Variant = x.vs[i].Name
			}
			res[i] = lists
			return nil
		})
	}
	if err := g.Wait(); err != nil {
		return nil, err
	}
	var all []store.List
	for _, l := range res {
		all = append(all, l...)
	}
	// The variants share the store and the list TTL: the first one writes.
	all, err := x.vs[0].Scorer.publish(ctx, all)
	if err != nil {
		return nil, err
	}
	for _, l := range all {
		x.lists.WithLabelValues(l.Variant).Inc()
		for _, it := range l.Items {
			x.items.WithLabelValues(l.Variant, it.Source).Inc()
		}
	}
	return all, nil
}

// RefreshTrending writes the anonymous lists with the first variant.
func (x *Variants) RefreshTrending(ctx context.Context) (store.List, error) {
	return x.vs[0].Scorer.RefreshTrending(ctx)
}
