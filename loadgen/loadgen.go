// Package loadgen generates synthetic clickstreams: users in planted taste
// clusters, items with Zipf popularity inside each cluster, sessions of
// several events per user and the four event types in realistic shares.
// The demo, `recstream produce`, the benchmark and the tests use it; the
// planted clusters give tests an answer to check lists against.
package loadgen

import (
	"math/rand/v2"
	"strconv"
	"time"

	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/event"
)

// Options configures a Generator. Zero values take the defaults.
type Options struct {
	Users      int     // distinct users (default 1000)
	Items      int     // distinct items (default 500)
	Clusters   int     // taste clusters (default 5)
	Affinity   float64 // probability that an event stays in the user's cluster (default 0.9)
	ZipfS      float64 // Zipf exponent of item popularity inside a cluster (default 1.1)
	SessionLen int     // mean events per session (default 5)
	Seed       uint64
	// Start and Step set event time: event k has ts Start + k·Step. A zero
	// Start means the wall clock at each call.
	Start time.Time
	Step  time.Duration
}

// Generator produces events. It is not safe for concurrent use.
type Generator struct {
	opt     Options
	rng     *rand.Rand
	zipf    *rand.Zipf
	perClus int
	k       int64
	user    int
	left    int
}

// New returns a generator.
func New(opt Options) *Generator {
	if opt.Users <= 0 {
		opt.Users = 1000
	}
	if opt.Items <= 0 {
		opt.Items = 500
	}
	if opt.Clusters <= 0 {
		opt.Clusters = 5
	}
	if opt.Affinity <= 0 {
		opt.Affinity = 0.9
	}
	if opt.ZipfS <= 1 {
		opt.ZipfS = 1.1
	}
	if opt.SessionLen <= 0 {
		opt.SessionLen = 5
	}
	rng := rand.New(rand.NewPCG(opt.Seed, opt.Seed^0x9e3779b97f4a7c15))
	per := opt.Items / opt.Clusters
	if per < 1 {
		per = 1
	}
	return &Generator{opt: opt, rng: rng, perClus: per, zipf: rand.NewZipf(rng, opt.ZipfS, 1, uint64(per-1))}
}

// UserID names user n.
func UserID(n int) string { return "u" + strconv.Itoa(n) }

// ItemID names item n.
func ItemID(n int) string { return "i" + strconv.Itoa(n) }

// Cluster returns the planted cluster of a user or item id made by UserID or
// ItemID (-1 for other ids).
func (g *Generator) Cluster(id string) int {
	if len(id) < 2 {
		return -1
	}
	n, err := strconv.Atoi(id[1:])
	if err != nil {
		return -1
	}
	if id[0] == 'i' && n >= g.perClus*g.opt.Clusters {
		return -1
	}
	return n % g.opt.Clusters
}

// ItemIn returns the item of popularity rank r inside cluster c.
func (g *Generator) ItemIn(c, r int) string { return ItemID(r*g.opt.Clusters + c) }

// Options returns the effective options.
func (g *Generator) Options() Options { return g.opt }

func (g *Generator) pickType() event.Type {
	x := g.rng.Float64()
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

// Next returns the next event.
func (g *Generator) Next() event.Event {
	if g.left <= 0 {
		g.user = g.rng.IntN(g.opt.Users)
		g.left = 1 + int(g.rng.ExpFloat64()*float64(g.opt.SessionLen))
	}
	g.left--
	c := g.user % g.opt.Clusters
	if g.rng.Float64() >= g.opt.Affinity {
		c = g.rng.IntN(g.opt.Clusters)
	}
	item := g.ItemIn(c, int(g.zipf.Uint64()))
	var ts int64
	if g.opt.Start.IsZero() {
		ts = time.Now().UnixMilli()
	} else {
		ts = g.opt.Start.Add(time.Duration(g.k) * g.opt.Step).UnixMilli()
	}
	g.k++
	return event.Event{UserID: UserID(g.user), ItemID: item, Type: g.pickType(), TS: ts, SessionID: "s" + strconv.Itoa(g.user) + "-" + strconv.FormatInt(g.k/int64(max(1, g.opt.SessionLen)), 10)}
}

// ForUser returns an event of user n on a random item of cluster c.
func (g *Generator) ForUser(n, c int, t event.Type) event.Event {
	item := g.ItemIn(c, int(g.zipf.Uint64()))
	return event.Event{UserID: UserID(n), ItemID: item, Type: t, TS: time.Now().UnixMilli()}
}

// Catalog returns a catalog consistent with the planted clusters: item
// ItemIn(c, r) is in category "c<c>/s<r mod 3>" with brand "b<c>-<r mod 4>",
// a price that grows with r, tags "cluster<c>" and "rank<r/10>", available,
// created at created minus r hours. Every cluster is one top-level
// category, so category affinity and cluster affinity coincide.
func (g *Generator) Catalog(created time.Time) []catalog.Item {
	out := make([]catalog.Item, 0, g.perClus*g.opt.Clusters)
	for r := 0; r < g.perClus; r++ {
		for c := 0; c < g.opt.Clusters; c++ {
			out = append(out, CatalogItem(g.ItemIn(c, r), c, r, created))
		}
	}
	return out
}

// CatalogItem returns the catalog record of the item of rank r in cluster c
// (see Catalog).
func CatalogItem(id string, c, r int, created time.Time) catalog.Item {
	return catalog.Item{
		ID:        id,
		Category:  "c" + strconv.Itoa(c) + "/s" + strconv.Itoa(r%3),
		Brand:     "b" + strconv.Itoa(c) + "-" + strconv.Itoa(r%4),
		Price:     float64(5 + 3*r),
		Tags:      []string{"cluster" + strconv.Itoa(c), "rank" + strconv.Itoa(r/10)},
		Available: true,
		CreatedAt: created.Add(-time.Duration(r) * time.Hour).UnixMilli(),
	}
}
