package scorer

import (
	"cmp"
	"context"
	"fmt"
	"log/slog"
	"math"
	"slices"
	"sort"
	"sync"
	"sync/atomic"
	"time"

	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/internal/topk"
	"github.com/recstream/recstream/store"
)

// Store is what the scorer needs of the state store: the reads of the
// sources and the list writes. A store that wraps another must pass every
// method on; nothing is found by type assertion.
type Store interface {
	Profiles(ctx context.Context, users []string, n, recent int) ([]store.Profile, error)
	UserVectors(ctx context.Context, users []string, n int) (map[string][]store.Scored, error)
	ItemNeighbours(ctx context.Context, items []string, n int) (map[string][]store.Scored, error)
	ItemUsers(ctx context.Context, items []string, n int) (map[string][]string, error)
	ItemDegrees(ctx context.Context, items []string) (map[string]float64, error)
	TopTrending(ctx context.Context, n int) ([]store.Scored, error)
	NextItems(ctx context.Context, items []string, n int) (map[string][]store.Next, error)
	WriteLists(ctx context.Context, lists []store.List, ttl time.Duration) error
	CatalogStore
}

// CatalogStore is what the scorer needs of the store when it has a
// catalog (Options.Catalog): the stored availability, the item -> lists
// index, and the anonymous per-category lists.
type CatalogStore interface {
	Unavailable(ctx context.Context, items []string) (map[string]bool, error)
	IndexListItems(ctx context.Context, lists []store.List, ttl time.Duration) error
	WriteCategoryLists(ctx context.Context, lists map[string]store.List, ttl time.Duration) error
	WriteNewArrivalLists(ctx context.Context, lists map[string]store.List, ttl time.Duration) error
}

// Sources of a recommendation.
const (
	SourceItemKNN  = "item_knn"
	SourceUserKNN  = "user_knn"
	SourceTrending = "trending"
	SourcePopular  = "popular"
)

// Options configures a Scorer. OptionsFromConfig gives the options of a
// configuration; New panics on a zero where a value is needed (a count, a
// similarity, the list TTL, the model name, the trending refresh, and
// every source weight 0).
type Options struct {
	TopN            int     // items per list
	Neighbours      int     // user-kNN: neighbours kept (K)
	CandidateUsers  int     // user-kNN: candidate neighbours whose vectors are read
	UsersPerItem    int     // user-kNN: recent users read per history item
	HistoryItems    int     // the user's strongest items used as seeds
	RecentEvents    int     // latest events whose items are seeds too; 0: none
	RecencyBoost    float64 // extra seed weight of the latest item (decays 0.7 per step back); 0 disables
	UserItems       int     // items of the user's own vector read
	NeighbourItems  int     // items read per neighbour vector
	ItemNeighbours  int     // item-kNN: co-occurring items read per seed at least; 0: whole rows
	UserSimilarity  string  // cosine or pearson
	ItemSimilarity  string  // cosine, jaccard or lift
	Shrinkage       float64 // added to similarity denominators
	WeightUserKNN   float64
	WeightItemKNN   float64
	WeightTrending  float64
	WeightPopular   float64 // the fallback prior: decayed popularity of every candidate (within the user's categories)
	WeightContent   float64 // content-based source (needs Catalog)
	WeightNew       float64 // new-arrivals source (needs Catalog)
	WeightNext      float64 // next-item source (next.go)
	NextItems       int     // next-item: transitions read per latest item
	NextSeeds       int     // next-item: the user's latest distinct items read
	Catalog         Catalog // nil: no content, new-arrival, diversity or availability filtering
	Content         ContentOptions
	MaxPerCategory  int     // diversity: items of one category in a list at most; 0 = no cap
	NewSlots        int     // places at the end of a list reserved for new arrivals; 0 = none
	WeightEASE      float64 // weight of the EASE source (needs EASE)
	EASE            *EASE   // background-refreshed item model; nil disables the source
	ExcludeSeen     bool    // drop every item the user interacted with (purchases are always dropped)
	ListTTL         time.Duration
	ModelName       string
	TrendingSize    int              // trending items read
	TrendingRefresh time.Duration    // how long the trending read is reused
	DegreeTTL       time.Duration    // how long item degrees are cached; 0: not cached
	Now             func() time.Time // nil: time.Now
	Logger          *slog.Logger     // nil: discard

	// ImpressionDiscount multiplies the blended score of an item shown to
	// the user k times since the user last clicked it by
	// ImpressionDiscount^k (0 or 1: off). Shown reads those counts.
	ImpressionDiscount float64
	Shown              func(ctx context.Context, users []string) ([]map[string]int, error)

	// NeighbourTTL is how long other entities' reads (neighbour vectors,
	// co-occurrence rows, recent users of items) are reused across users
	// and batches; the rescored user's own profile is always read. 0
	// disables the reuse.
	NeighbourTTL time.Duration

	// ItemNeighbourBudget is how many co-occurring items item-kNN reads
	// per user, shared among the seeds: a user with few seeds reads each
	// row deeper than ItemNeighbours; 0 never reads deeper.
	ItemNeighbourBudget int
}

// check panics, naming the option, on a value the scorer cannot work
// with.
func (o *Options) check() {
	bad := func(name string, v any) {
		panic(fmt.Sprintf("scorer.New: Options.%s is %v; build the options with OptionsFromConfig", name, v))
	}
	for _, c := range []struct {
		name string
		v    int
	}{
		{"TopN", o.TopN}, {"Neighbours", o.Neighbours}, {"CandidateUsers", o.CandidateUsers},
		{"UsersPerItem", o.UsersPerItem}, {"HistoryItems", o.HistoryItems}, {"UserItems", o.UserItems},
		{"NeighbourItems", o.NeighbourItems}, {"NextItems", o.NextItems}, {"TrendingSize", o.TrendingSize},
	} {
		if c.v <= 0 {
			bad(c.name, c.v)
		}
	}
	if o.RecentEvents < 0 {
		bad("RecentEvents", o.RecentEvents)
	}
	if o.NextSeeds < 0 {
		bad("NextSeeds", o.NextSeeds)
	}
	if o.UserSimilarity == "" {
		bad("UserSimilarity", `""`)
	}
	if o.ItemSimilarity == "" {
		bad("ItemSimilarity", `""`)
	}
	if o.WeightUserKNN == 0 && o.WeightItemKNN == 0 && o.WeightTrending == 0 && o.WeightEASE == 0 && o.WeightContent == 0 && o.WeightNew == 0 && o.WeightNext == 0 && o.WeightPopular == 0 {
		bad("Weight*", "0 for every source")
	}
	if o.ListTTL <= 0 {
		bad("ListTTL", o.ListTTL)
	}
	if o.ModelName == "" {
		bad("ModelName", `""`)
	}
	if o.TrendingRefresh <= 0 {
		bad("TrendingRefresh", o.TrendingRefresh)
	}
	o.Content.check()
}

// Scorer computes hybrid recommendation lists from the store.
type Scorer struct {
	st  Store
	opt Options

	mu         sync.Mutex
	trending   []store.Scored
	trendingAt time.Time

	// The item and user numbers and the caches of other entities' reads
	// (co-occurrence rows, recent users of items, neighbour vectors, item
	// degrees) that hold them.
	num         atomic.Pointer[numbered]
	maxNumbered int // items or users a numbering holds before it is replaced

	easeAt atomic.Pointer[easeIndex] // the EASE model's items by number (easeIndex)

	listMu    sync.Mutex
	listItems map[string]map[string]bool // user -> items of the list last written
}

// New returns a Scorer reading st. It panics when opt lacks a count, a
// similarity, every source weight, the list TTL, the model name or the
// trending refresh.
func New(st Store, opt Options) *Scorer {
	opt.check()
	if opt.Now == nil {
		opt.Now = time.Now
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	s := &Scorer{st: st, opt: opt, maxNumbered: defaultMaxNumbered}
	s.num.Store(newNumbered(opt))
	return s
}

// numbered returns the numbering a Score call works with, starting a new
// one when a table has grown past s.maxNumbered.
func (s *Scorer) numbered() *numbered {
	nb := s.num.Load()
	if nb.items.len() <= s.maxNumbered && nb.users.len() <= s.maxNumbered {
		return nb
	}
	if fresh := newNumbered(s.opt); s.num.CompareAndSwap(nb, fresh) {
		return fresh
	}
	return s.num.Load()
}

// Options returns the effective options.
func (s *Scorer) Options() Options { return s.opt }

// Refresh computes the users' lists and writes them, one SET each.
func (s *Scorer) Refresh(ctx context.Context, users []string) ([]store.List, error) {
	lists, err := s.Recommend(ctx, users)
	if err != nil {
		return nil, err
	}
	return s.publish(ctx, lists)
}

// publish writes users' lists with this scorer's list TTL and indexes them
// by item, and returns the lists written: the one write path of the plain
// scorer and of the A/B variants. A user with no state (expired, or erased
// by store.Forget) gets no list: the web tier falls back to the trending
// list.
func (s *Scorer) publish(ctx context.Context, lists []store.List) ([]store.List, error) {
	kept := lists[:0]
	for _, l := range lists {
		if l.EventTS != 0 {
			kept = append(kept, l)
		}
	}
	if err := s.st.WriteLists(ctx, kept, s.opt.ListTTL); err != nil {
		return nil, err
	}
	if err := s.indexLists(ctx, kept); err != nil {
		return nil, err
	}
	return kept, nil
}

// RefreshTrending writes the anonymous visitors' list.
func (s *Scorer) RefreshTrending(ctx context.Context) (store.List, error) {
	tr, err := s.trendingTop(ctx)
	if err != nil {
		return store.List{}, err
	}
	l := store.List{GeneratedAt: s.opt.Now().UnixMilli(), Model: "trending"}
	maxScore := 0.0
	if len(tr) > 0 {
		maxScore = tr[0].Score
	}
	for _, t := range tr {
		if len(l.Items) >= s.opt.TopN {
			break
		}
		if !s.available(t.ID) {
			continue
		}
		l.Items = append(l.Items, store.ListItem{Item: t.ID, Score: t.Score / maxScore, Source: SourceTrending, Reason: s.trendingReason(t.ID)})
	}
	if err := s.st.WriteLists(ctx, []store.List{l}, s.opt.ListTTL); err != nil {
		return store.List{}, err
	}
	if err := s.categoryLists(ctx, tr); err != nil {
		return store.List{}, err
	}
	return l, nil
}

// Recommend computes the users' lists without writing them.
func (s *Scorer) Recommend(ctx context.Context, users []string) ([]store.List, error) {
	scores, err := s.Score(ctx, users)
	if err != nil {
		return nil, err
	}
	if err := s.checkAvailability(ctx, scores); err != nil {
		return nil, err
	}
	now := s.opt.Now().UnixMilli()
	lists := make([]store.List, len(scores))
	for k, us := range scores {
		lists[k] = store.List{
			User:        us.Profile.User,
			GeneratedAt: now,
			Model:       s.opt.ModelName,
			EventTS:     us.Profile.LastTS,
			Items:       s.top(us),
		}
		scores[k].recycle()
	}
	return lists, nil
}

func (s *Scorer) top(us UserScores) []store.ListItem {
	cands := s.ranked(us, us.Unavailable, s.opt.TopN)
	out := make([]store.ListItem, len(cands))
	for i, c := range cands {
		out[i] = store.ListItem{Item: c.Item, Score: c.Score, Source: c.Source, Reason: c.Reason}
	}
	return out
}

// Score computes every candidate of each user with its per-source scores.
// It reads the store in three pipelined rounds for the whole batch (a
// fourth for the popularity of candidates whose degree was not read yet).
func (s *Scorer) Score(ctx context.Context, users []string) ([]UserScores, error) {
	return s.score(ctx, users, nil)
}

// Rank scores the given items for the user with the sources and blend of
// the user's list, from the same candidate rows: items no source proposes
// score their prior (the popular source) only. The answer holds each
// distinct item once, best first (ties by item name); purchased and seen
// items are ranked too, the caller chose them.
func (s *Scorer) Rank(ctx context.Context, user string, items []string) ([]store.ListItem, error) {
	want := make([]string, 0, len(items))
	seen := make(map[string]bool, len(items))
	for _, it := range items {
		if !seen[it] {
			seen[it] = true
			want = append(want, it)
		}
	}
	scores, err := s.score(ctx, []string{user}, [][]string{want})
	if err != nil {
		return nil, err
	}
	us := &scores[0]
	defer us.recycle()
	out := make([]store.ListItem, len(want))
	for i, it := range want {
		out[i] = store.ListItem{Item: it}
		if c := us.Candidate(it); c != nil {
			out[i] = store.ListItem{Item: it, Score: c.Score, Source: c.Source, Reason: c.Reason}
		}
	}
	slices.SortStableFunc(out, func(a, b store.ListItem) int {
		if a.Score != b.Score {
			return cmp.Compare(b.Score, a.Score)
		}
		return cmp.Compare(a.Item, b.Item)
	})
	return out, nil
}

// rowDepth is how many items of each co-occurrence row a Score call
// reads: the most any user reads (0: whole rows).
func (s *Scorer) rowDepth() int {
	if s.opt.ItemNeighbours <= 0 {
		return 0
	}
	return max(s.opt.ItemNeighbours, s.opt.ItemNeighbourBudget)
}

// seedDepth is how many items of each seed's row a user with n seeds
// uses (0: all): ItemNeighbours, or the budget shared among the seeds
// when that is more.
func (s *Scorer) seedDepth(n int) int {
	if s.opt.ItemNeighbours <= 0 {
		return 0
	}
	d := s.opt.ItemNeighbours
	if n > 0 && s.opt.ItemNeighbourBudget > 0 {
		d = max(d, s.opt.ItemNeighbourBudget/n)
	}
	return d
}

// head returns the first d entries of a row (all when d <= 0).
func head(row []entry, d int) []entry {
	if d > 0 && len(row) > d {
		return row[:d]
	}
	return row
}

// score is Score whose users also get a candidate row for each of
// extra[k] (Rank's items), scored by every source that scores the rows.
// It reads the store in rounds for the whole batch: the profiles and
// trending items; the seeds' rows, recent users and transitions; the
// candidate neighbours' vectors and the degrees; the degrees of the
// content candidates. Then it blends each user's sources.
func (s *Scorer) score(ctx context.Context, users []string, extra [][]string) ([]UserScores, error) {
	profiles, err := s.st.Profiles(ctx, users, s.opt.UserItems, s.opt.RecentEvents)
	if err != nil {
		return nil, err
	}
	trending, err := s.trendingTop(ctx)
	if err != nil {
		return nil, err
	}
	c := &scoreCall{s: s, nb: s.numbered(), now: s.opt.Now(), profiles: profiles, trending: trending}
	c.collectSeeds()
	if err := c.readSeeds(ctx); err != nil {
		return nil, err
	}
	c.sc = scratchPool.Get().(*scratch)
	defer c.release()
	c.candidateNeighbours()
	c.numberTrending(extra)
	c.markDegrees()
	if err := c.readNeighbours(ctx); err != nil {
		return nil, err
	}
	c.trendingReasons()
	c.numberUserItems()
	var shown []map[string]int
	if d := s.opt.ImpressionDiscount; d > 0 && d < 1 && s.opt.Shown != nil {
		if shown, err = s.opt.Shown(ctx, users); err != nil {
			return nil, err
		}
	}
	out := c.sources()
	if err := c.popularity(ctx, out); err != nil {
		return nil, err
	}
	for k := range out {
		out[k].blend(s.opt)
		if shown != nil {
			out[k].discount(shown[k], s.opt.ImpressionDiscount)
		}
	}
	return out, nil
}

// scoreCall is what one score call read and numbered, step by step.
type scoreCall struct {
	s        *Scorer
	nb       *numbered
	sc       *scratch // taken once the seeds are read; release returns it
	now      time.Time
	profiles []store.Profile
	trending []store.Scored

	userSeeds [][]store.Scored // by profile: item-kNN's and the neighbour search's seeds
	sd        seedsOf          // every user's seeds, once
	nextIDs   []int32          // the next-item source's seeds, once
	nextAt    map[string]int   // a next-item seed's place in nextIDs by name
	nextRows  [][]nextEntry    // by nextIDs

	cands     [][]int32 // by profile: candidate neighbours by user number
	candList  []int32   // every user's candidates, once
	userOrder nameOrder

	trendMax float64
	trendIDs []int32   // the trending items numbered (none when no source uses them)
	trendWhy []string  // by trendIDs: the trending source's reasons; nil when it is off
	extraIDs [][]int32 // the items to rank, numbered
	degIDs   []int32   // items whose degree the call read
	userIDs  [][]int32 // by profile: the user's own items numbered
}

// release clears what the call set in the scratch and returns it.
func (c *scoreCall) release() {
	sc := c.sc
	for _, id := range c.degIDs {
		sc.deg[id], sc.dmark[id] = 0, false
	}
	for _, v := range c.candList {
		sc.vecs[v] = nil
	}
	scratchPool.Put(sc)
}

// collectSeeds numbers each user's seeds (strongest and latest items) and
// the next-item source's seeds (latest items).
func (c *scoreCall) collectSeeds() {
	s, nb := c.s, c.nb
	seedSet := make(map[string]bool)
	c.userSeeds = make([][]store.Scored, len(c.profiles))
	for k, p := range c.profiles {
		c.userSeeds[k] = s.Seeds(p)
		for _, sd := range c.userSeeds[k] {
			seedSet[sd.ID] = true
		}
	}
	seeds := keys(seedSet)
	seedIDs := make([]int32, len(seeds))
	nb.items.number(seeds, seedIDs)
	c.sd = seedsOf{at: make(map[string]int, len(seeds)), ids: seedIDs}
	for i, name := range seeds {
		c.sd.at[name] = i
	}
	c.nextAt = map[string]int{}
	if s.opt.WeightNext > 0 {
		set := make(map[string]bool)
		for _, p := range c.profiles {
			for _, it := range s.nextSeeds(p) {
				set[it] = true
			}
		}
		names := keys(set)
		c.nextIDs = make([]int32, len(names))
		nb.items.number(names, c.nextIDs)
		for i, name := range names {
			c.nextAt[name] = i
		}
	}
}

// readSeeds reads, in one round, the seeds' co-occurrence rows (item-kNN),
// their recent users (user-kNN) and the next-item seeds' transitions.
func (c *scoreCall) readSeeds(ctx context.Context) error {
	s, nb := c.s, c.nb
	g, gctx := errgroup.WithContext(ctx)
	if s.opt.WeightItemKNN > 0 {
		g.Go(func() error {
			var err error
			c.sd.rows, err = nb.rows.get(gctx, c.now, c.sd.ids, s.rowDepth(), nb.readRows(s.st))
			return err
		})
	}
	if s.opt.WeightUserKNN > 0 {
		g.Go(func() error {
			var err error
			c.sd.users, err = nb.itemUsers.get(gctx, c.now, c.sd.ids, s.opt.UsersPerItem, nb.readItemUsers(s.st))
			return err
		})
	}
	if len(c.nextIDs) > 0 {
		g.Go(func() error {
			var err error
			c.nextRows, err = nb.next.get(gctx, c.now, c.nextIDs, s.opt.NextItems, nb.readNext(s.st))
			return err
		})
	}
	return g.Wait()
}

// candidateNeighbours finds each user's candidate neighbours (the users
// who share the most seeds) and lists every user's once.
func (c *scoreCall) candidateNeighbours() {
	s, nb, sc := c.s, c.nb, c.sc
	c.cands = make([][]int32, len(c.profiles))
	if s.opt.WeightUserKNN <= 0 {
		return
	}
	sc.fitUsers(nb.users.len())
	c.userOrder = nb.users.order()
	for k, p := range c.profiles {
		c.cands[k] = s.candidateUsers(nb.users.lookup(p.User), c.userSeeds[k], &c.sd, c.userOrder, sc)
		for _, v := range c.cands[k] {
			if !sc.cmark[v] {
				sc.cmark[v] = true
				c.candList = append(c.candList, v)
			}
		}
	}
	for _, v := range c.candList {
		sc.cmark[v] = false
	}
}

// numberTrending numbers the trending items (the trending source, and the
// popular source's candidates that fill every list) and the items to rank.
func (c *scoreCall) numberTrending(extra [][]string) {
	s, nb := c.s, c.nb
	if len(c.trending) > 0 {
		c.trendMax = c.trending[0].Score
	}
	if (s.opt.WeightTrending > 0 || s.opt.WeightPopular > 0) && c.trendMax > 0 {
		c.trendIDs = nb.items.numbers(c.trending)
	}
	c.extraIDs = make([][]int32, len(extra))
	for k, items := range extra {
		c.extraIDs[k] = make([]int32, len(items))
		nb.items.number(items, c.extraIDs[k])
	}
}

// markDegree adds an item to those whose degree the call reads.
func (c *scoreCall) markDegree(id int32) {
	if !c.sc.dmark[id] {
		c.sc.dmark[id] = true
		c.degIDs = append(c.degIDs, id)
	}
}

// markDegrees marks the degrees item-kNN needs, of the seeds and the
// items of their rows as deep as the deepest reading user reads them, and
// the popular source's, of the trending items and the items to rank.
func (c *scoreCall) markDegrees() {
	s, sd := c.s, &c.sd
	c.sc.fit(c.nb.items.len())
	if s.opt.WeightItemKNN > 0 {
		sd.deep = make([]int, len(sd.ids))
		for k := range c.profiles {
			d := s.seedDepth(len(c.userSeeds[k]))
			for _, seed := range c.userSeeds[k] {
				i := sd.at[seed.ID]
				sd.deep[i] = max(sd.deep[i], len(head(sd.rows[i], d)))
			}
		}
		for i, id := range sd.ids {
			c.markDegree(id)
			for _, x := range sd.rows[i][:sd.deep[i]] {
				c.markDegree(x.id)
			}
		}
	}
	if s.opt.WeightPopular > 0 {
		for _, id := range c.trendIDs {
			c.markDegree(id)
		}
		for _, ids := range c.extraIDs {
			for _, id := range ids {
				c.markDegree(id)
			}
		}
	}
}

// readNeighbours reads, in one round, the candidate neighbours' vectors
// and the marked degrees into the scratch.
func (c *scoreCall) readNeighbours(ctx context.Context) error {
	s, nb, sc := c.s, c.nb, c.sc
	var neigh []*neighbourVector // by candList
	var degrees []float64        // by degIDs
	g, gctx := errgroup.WithContext(ctx)
	if len(c.candList) > 0 {
		g.Go(func() error {
			var err error
			neigh, err = nb.vectors.get(gctx, c.now, c.candList, s.opt.NeighbourItems, s.readVectors(nb))
			return err
		})
	}
	if len(c.degIDs) > 0 {
		g.Go(func() error {
			var err error
			degrees, err = nb.degrees.get(gctx, c.now, c.degIDs, 0, nb.readDegrees(s.st))
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return err
	}
	for i, id := range c.degIDs {
		sc.deg[id] = degrees[i]
	}
	for i, v := range c.candList {
		sc.vecs[v] = neigh[i]
	}
	return nil
}

// trendingReasons gives each trending item its reason when the trending
// source is on.
func (c *scoreCall) trendingReasons() {
	if c.s.opt.WeightTrending > 0 && c.trendMax > 0 {
		for _, t := range c.trending {
			c.trendWhy = append(c.trendWhy, c.s.trendingReason(t.ID))
		}
	}
}

// numberUserItems numbers the users' own items, for user-kNN and for
// dropping the items they have seen.
func (c *scoreCall) numberUserItems() {
	c.userIDs = make([][]int32, len(c.profiles))
	if c.s.opt.WeightUserKNN > 0 || c.s.opt.ExcludeSeen {
		for k, p := range c.profiles {
			c.userIDs[k] = c.nb.items.numbers(p.Items)
		}
	}
}

// sources scores each user's candidates by every personal source, adds
// the items to rank and the trending items, and marks the user's own
// items when seen items are excluded.
func (c *scoreCall) sources() []UserScores {
	s, sc := c.s, c.sc
	ci := &callItems{t: c.nb.items, names: c.nb.items.snapshot()}
	sc.fit(len(ci.names))
	out := make([]UserScores, len(c.profiles))
	for k, p := range c.profiles {
		us := UserScores{Profile: p, items: ci, sc: sc, seeds: c.userSeeds[k], cat: s.opt.Catalog}
		if len(p.Items) > 0 {
			s.itemKNN(&us, c.userSeeds[k], &c.sd)
			s.userKNN(&us, c.userIDs[k], c.cands[k], c.userOrder)
		}
		if k < len(c.extraIDs) {
			for _, id := range c.extraIDs[k] {
				us.at(id)
			}
		}
		if len(p.Items) > 0 {
			s.content(&us)
			s.nextItem(&us, s.nextSeeds(p), c.nextAt, c.nextRows)
		}
		for i, id := range c.trendIDs {
			if c.trendWhy != nil {
				us.note(us.at(id), srcTrending, c.trending[i].Score/c.trendMax, c.trendWhy[i])
			} else {
				us.at(id)
			}
		}
		if len(p.Items) > 0 {
			s.easeScores(&us)
		}
		if s.opt.ExcludeSeen {
			us.markOwn(c.userIDs[k])
		}
		us.release()
		out[k] = us
	}
	return out
}

// popularity scores the popular prior and the content candidates'
// popularity, reading in one more round the degrees of the content
// candidates no earlier read covered. The popular prior scores the
// candidates whose degree the call read: item-kNN's, content's, the
// trending items and the items to rank (reading the degree of every
// user-kNN candidate too would double a rescore's commands).
func (c *scoreCall) popularity(ctx context.Context, out []UserScores) error {
	s, sc := c.s, c.sc
	if s.opt.WeightPopular <= 0 && !s.contentOn() {
		return nil
	}
	from := len(c.degIDs)
	if s.contentOn() {
		for k := range out {
			if t := out[k].t; t != nil {
				for _, r := range t.rows {
					if r.has&(1<<srcContent) != 0 {
						c.markDegree(r.id)
					}
				}
			}
		}
	}
	if more := c.degIDs[from:]; len(more) > 0 {
		got, err := c.nb.degrees.get(ctx, c.now, more, 0, c.nb.readDegrees(s.st))
		if err != nil {
			return err
		}
		for i, id := range more {
			sc.deg[id] = got[i]
		}
	}
	for k := range out {
		s.popular(&out[k], sc.deg)
		s.contentPopularity(&out[k], sc.deg)
	}
	return nil
}

// popular scores the user's candidates whose degree deg holds (0 for the
// others) with their prior: the item's decayed popularity (its degree, the
// decayed count of its distinct users), times 1 + the share of the user's
// weight in the item's category when the catalog has one, so popular
// items of the user's categories come first among the items no personal
// source proposes.
func (s *Scorer) popular(us *UserScores, deg []float64) {
	if us.t == nil {
		return
	}
	cat := s.opt.Catalog
	var share map[string]float64
	if s.opt.WeightPopular > 0 && cat != nil && len(us.Profile.Items) > 0 {
		share = categoryShares(cat, us.Profile.Items)
	}
	if s.opt.WeightPopular <= 0 {
		return
	}
	for k := range us.t.rows {
		r := &us.t.rows[k]
		d := deg[r.id]
		if d <= 0 {
			continue
		}
		if len(share) > 0 {
			d *= 1 + share[cat.Category(us.item(k))]
		}
		r.vals[srcPopular] = d
		r.has |= 1 << srcPopular
	}
}

// categoryShares returns each category's share of the user's normalised
// weights (summing to 1 over the items with a category).
func categoryShares(cat Catalog, items []store.Scored) map[string]float64 {
	out := make(map[string]float64)
	var sum float64
	for _, it := range items {
		if c := cat.Category(it.ID); c != "" {
			out[c] += it.Score
			sum += it.Score
		}
	}
	if sum <= 0 {
		return nil
	}
	for c := range out {
		out[c] /= sum
	}
	return out
}

// seedsOf is what a Score call read of its seeds, by their place in ids
// (at gives a seed's place by name).
type seedsOf struct {
	at    map[string]int
	ids   []int32   // the seeds' item numbers
	rows  [][]entry // co-occurrence rows (item-kNN)
	deep  []int     // item-kNN: how many items of its row the deepest reading user reads
	users [][]int32 // recent users by number (user-kNN)
}

// readByNumber returns a cache fetch for items (or users) of table t by
// number: it reads them by name with read and keeps conv of what was found.
func readByNumber[V, W any](t *table, read func(context.Context, []string, int) (map[string]V, error),
	conv func(V) W) func(context.Context, []int32, int) (map[int32]W, error) {
	return func(ctx context.Context, ids []int32, n int) (map[int32]W, error) {
		names := t.namesOf(ids)
		got, err := read(ctx, names, n)
		if err != nil {
			return nil, err
		}
		out := make(map[int32]W, len(ids))
		for i, id := range ids {
			if v, ok := got[names[i]]; ok {
				out[id] = conv(v)
			}
		}
		return out, nil
	}
}

// readRows reads co-occurrence rows and numbers their items.
func (nb *numbered) readRows(st Store) func(context.Context, []int32, int) (map[int32][]entry, error) {
	return readByNumber(nb.items, st.ItemNeighbours, nb.items.entries)
}

// readItemUsers reads the recent users of items and numbers them.
func (nb *numbered) readItemUsers(st Store) func(context.Context, []int32, int) (map[int32][]int32, error) {
	return readByNumber(nb.items, st.ItemUsers, func(vs []string) []int32 {
		ids := make([]int32, len(vs))
		nb.users.number(vs, ids)
		return ids
	})
}

// readDegrees reads item degrees.
func (nb *numbered) readDegrees(st Store) func(context.Context, []int32, int) (map[int32]float64, error) {
	read := func(ctx context.Context, items []string, _ int) (map[string]float64, error) {
		got, err := st.ItemDegrees(ctx, items)
		if err != nil {
			return nil, fmt.Errorf("reading degrees: %w", err)
		}
		return got, nil
	}
	return readByNumber(nb.items, read, func(d float64) float64 { return d })
}

// readVectors reads neighbour vectors (users by number), normalises them
// and numbers their items.
func (s *Scorer) readVectors(nb *numbered) func(context.Context, []int32, int) (map[int32]*neighbourVector, error) {
	return readByNumber(nb.users, s.st.UserVectors, func(vec []store.Scored) *neighbourVector {
		nv := s.neighbourVector(vec, nb.items)
		return &nv
	})
}

// Seeds returns the items a user's item-kNN and neighbour search start
// from, with their weights: the HistoryItems strongest items (weight
// relative to the strongest) and the items of the RecentEvents latest
// events, boosted by RecencyBoost·0.7^position.
func (s *Scorer) Seeds(p store.Profile) []store.Scored {
	if len(p.Items) == 0 {
		return nil
	}
	maxW := p.Items[0].Score
	w := make(map[string]float64, len(p.Items))
	for _, it := range p.Items {
		w[it.ID] = it.Score / maxW
	}
	var out []store.Scored
	idx := make(map[string]int)
	for i, it := range p.Items {
		if i >= s.opt.HistoryItems {
			break
		}
		idx[it.ID] = len(out)
		out = append(out, store.Scored{ID: it.ID, Score: w[it.ID]})
	}
	boost := s.opt.RecencyBoost
	for pos, id := range p.Recent[:min(len(p.Recent), s.opt.RecentEvents)] {
		base, ok := w[id]
		if !ok {
			continue // evicted from the capped vector
		}
		f := 1 + boost*math.Pow(0.7, float64(pos))
		if i, ok := idx[id]; ok {
			out[i].Score = base * f
			continue
		}
		idx[id] = len(out)
		out = append(out, store.Scored{ID: id, Score: base * f})
	}
	return out
}

// itemKNN scores the items of the seeds' co-occurrence rows (in sd); the
// scratch holds the degrees of the seeds and of the rows' items.
func (s *Scorer) itemKNN(us *UserScores, seeds []store.Scored, sd *seedsOf) {
	if s.opt.WeightItemKNN <= 0 {
		return
	}
	deg := us.sc.deg
	d := s.seedDepth(len(seeds))
	for si, seed := range seeds {
		a := seed.Score
		i := sd.at[seed.ID]
		nj := deg[sd.ids[i]]
		for _, x := range head(sd.rows[i], d) {
			sim := ItemSimilarity(s.opt.ItemSimilarity, x.score, deg[x.id], nj, s.opt.Shrinkage)
			if sim <= 0 {
				continue
			}
			k := us.at(x.id) // before us.t is read: it may make the table
			r := &us.t.rows[k]
			contrib := sim * a
			if contrib > r.best {
				r.best = contrib
				r.seed = int32(si) // the reason: "because you viewed" the seed
			}
			r.vals[srcItemKNN] += contrib
			r.has |= 1 << srcItemKNN
		}
	}
	us.clearBest()
}

// candidateUsers returns the numbers of the CandidateUsers users (the
// user, number self, excepted) who share the most seeds with the user, ties
// by name: sd holds each seed's recent users by number, names orders the
// users by name.
func (s *Scorer) candidateUsers(self int32, seeds []store.Scored, sd *seedsOf, names nameOrder, sc *scratch) []int32 {
	order := sc.vorder[:0]
	for _, it := range seeds {
		for _, v := range sd.users[sd.at[it.ID]] {
			if v == self {
				continue
			}
			if sc.shared[v] == 0 {
				order = append(order, v)
			}
			sc.shared[v]++
		}
	}
	// Ranked by shared seeds, ties by name: all users above the count at
	// which the CandidateUsers are reached are in, and names are compared
	// only among the users at that count (most users share one seed, so
	// ranking them all by name was most of this function's time).
	k := s.opt.CandidateUsers
	var top int32
	for _, v := range order {
		top = max(top, sc.shared[v])
	}
	hist := slices.Grow(sc.hist[:0], int(top)+1)[:top+1]
	clear(hist)
	for _, v := range order {
		hist[sc.shared[v]]++
	}
	cut, above := top, 0 // users with more than cut shared seeds: above
	for cut > 1 && above+int(hist[cut]) < k {
		above += int(hist[cut])
		cut--
	}
	sc.hist = hist
	// Each user with its sort key: compared where the entry is, not looked
	// up by number in the table's keys (a cache miss per comparison).
	type ov struct {
		id  int32
		n   int32
		key uint64
	}
	vs := make([]ov, above, above+int(hist[cut]))
	at := vs[above:] // the users at cut, in the same array after those above
	vs = vs[:0]
	for _, v := range order {
		if n := sc.shared[v]; n > cut {
			vs = append(vs, ov{v, n, names.keys[v]})
		}
	}
	for _, v := range order {
		if n := sc.shared[v]; n == cut {
			at = append(at, ov{v, n, names.keys[v]})
		}
		sc.shared[v] = 0
	}
	sc.vorder = order[:0]
	byName := func(a, b ov) int { return names.compareKeyed(a.key, b.key, a.id, b.id) }
	if len(vs)+len(at) > k {
		at = topk.Best(at, k-len(vs), byName)
	}
	vs = append(vs, at...)
	slices.SortFunc(vs, func(a, b ov) int {
		if a.n != b.n {
			return cmp.Compare(b.n, a.n)
		}
		return byName(a, b)
	})
	out := make([]int32, len(vs))
	for i, v := range vs {
		out[i] = v.id
	}
	return out
}

// NormalisedVector turns a user's scaled weights into a vector whose largest
// entry is 1.
func NormalisedVector(items []store.Scored) map[string]float64 {
	out := make(map[string]float64, len(items))
	maxW := 0.0
	for _, it := range items {
		if it.Score > maxW {
			maxW = it.Score
		}
	}
	if maxW <= 0 {
		return out
	}
	for _, it := range items {
		out[it.ID] = it.Score / maxW
	}
	return out
}

// neighbourVector is a candidate neighbour's vector as NormalisedVector
// gives it, by item number: two flat slices, since every user that meets
// the neighbour iterates them (a map made this the scorer's largest cost,
// and entries with their item names tripled the memory read); its
// Euclidean norm, and the map form only where Pearson needs it.
type neighbourVector struct {
	ids  []int32   // item numbers (numbered's item table)
	vals []float64 // normalised weights
	norm float64
	m    map[string]float64 // nil unless UserSimilarity is pearson
}

// neighbourVector normalises a user vector read from the store and numbers
// its items in t.
func (s *Scorer) neighbourVector(items []store.Scored, t *table) neighbourVector {
	maxW := 0.0
	for _, it := range items {
		maxW = max(maxW, it.Score)
	}
	var nv neighbourVector
	if maxW <= 0 {
		return nv
	}
	nv.ids = t.numbers(items)
	nv.vals = make([]float64, len(items))
	var ss float64
	for i, it := range items {
		x := it.Score / maxW
		nv.vals[i] = x
		ss += x * x
	}
	nv.norm = math.Sqrt(ss)
	if s.opt.UserSimilarity == "pearson" {
		nv.m = NormalisedVector(items)
	}
	return nv
}

// userKNN scores the user's neighbours among cands (users by number, names
// orders them by name), whose vectors the scratch holds by user number;
// uids are the numbers of the user's items.
func (s *Scorer) userKNN(us *UserScores, uids []int32, cands []int32, names nameOrder) {
	if s.opt.WeightUserKNN <= 0 || len(cands) == 0 {
		return
	}
	sc := us.sc
	nu := loadUserVector(sc, us.Profile.Items, uids)
	defer func() {
		for _, id := range uids {
			sc.uval[id] = 0
			sc.umark.remove(id)
		}
	}()
	touchVectors(sc, cands)
	nbs := s.neighbours(us, nu, cands, names)
	// Σ sim·r per item, in the order the items are first met.
	var den float64
	order := sc.order[:0]
	for _, n := range nbs {
		den += math.Abs(n.sim)
		for i, id := range n.vec.ids {
			if !sc.amark[id] {
				sc.amark[id] = true
				order = append(order, id)
			}
			sc.acc[id] += n.sim * n.vec.vals[i]
		}
	}
	for _, id := range order {
		if den != 0 {
			us.note(us.at(id), srcUserKNN, sc.acc[id]/den, "")
		}
		sc.acc[id], sc.amark[id] = 0, false
	}
	sc.order = order[:0]
}

// loadUserVector puts the user's vector, as NormalisedVector gives it,
// into the scratch by item number (uids: the numbers of items) and
// returns its Euclidean norm. The caller clears it.
func loadUserVector(sc *scratch, items []store.Scored, uids []int32) float64 {
	maxW := 0.0
	for _, it := range items {
		maxW = max(maxW, it.Score)
	}
	var ss float64
	if maxW > 0 {
		for i, it := range items {
			x := it.Score / maxW
			sc.uval[uids[i]] = x
			sc.umark.add(uids[i])
			ss += x * x
		}
	}
	return math.Sqrt(ss)
}

// touchVectors reads one word of every cache line of the candidates'
// vectors. Each candidate's vector is likely a cache miss (a scorer caches
// far more vectors than the CPU's caches hold), and one dot product is too
// long for the CPU to start loading the next vector while it runs:
// touching every vector's items first lets their misses overlap.
func touchVectors(sc *scratch, cands []int32) {
	var touch float64
	for _, v := range cands {
		if vec := sc.vecs[v]; vec != nil {
			for i := 0; i < len(vec.ids); i += 16 { // 16 numbers: 64 bytes, a cache line
				touch += float64(vec.ids[i])
			}
			for i := 0; i < len(vec.vals); i += 8 {
				touch += vec.vals[i]
			}
		}
	}
	sc.touched = touch
}

// neighbour is a candidate neighbour with its similarity to the user.
type neighbour struct {
	id  int32
	sim float64
	vec *neighbourVector
}

// neighbours returns the Neighbours candidates most similar to the user
// (similarity > 0; ties by name), whose vector the scratch holds (nu: its
// norm).
func (s *Scorer) neighbours(us *UserScores, nu float64, cands []int32, names nameOrder) []neighbour {
	sc := us.sc
	pearson := s.opt.UserSimilarity == "pearson"
	var u map[string]float64
	if pearson {
		u = NormalisedVector(us.Profile.Items)
	}
	nbs := make([]neighbour, 0, len(cands))
	for _, v := range cands {
		vec := sc.vecs[v]
		if vec == nil {
			continue
		}
		var sim float64
		common := 0
		if pearson {
			sim = Pearson(u, vec.m)
			if s.opt.Shrinkage > 0 {
				for _, id := range vec.ids {
					if sc.umark.has(id) {
						common++
					}
				}
			}
		} else {
			var dot float64
			for i, id := range vec.ids {
				if sc.umark.has(id) {
					dot += vec.vals[i] * sc.uval[id]
					common++
				}
			}
			if dot != 0 {
				sim = dot / (nu * vec.norm)
			}
		}
		if s.opt.Shrinkage > 0 {
			sim *= float64(common) / (float64(common) + s.opt.Shrinkage)
		}
		if sim > 0 {
			nbs = append(nbs, neighbour{v, sim, vec})
		}
	}
	return topk.Best(nbs, s.opt.Neighbours, func(a, b neighbour) int {
		if a.sim != b.sim {
			return cmp.Compare(b.sim, a.sim)
		}
		return names.compare(a.id, b.id)
	})
}

func (s *Scorer) trendingTop(ctx context.Context) ([]store.Scored, error) {
	s.mu.Lock()
	defer s.mu.Unlock()
	now := s.opt.Now()
	if s.trending != nil && now.Sub(s.trendingAt) < s.opt.TrendingRefresh {
		return s.trending, nil
	}
	tr, err := s.st.TopTrending(ctx, s.opt.TrendingSize)
	if err != nil {
		return nil, err
	}
	s.trending, s.trendingAt = tr, now
	return tr, nil
}

func keys(m map[string]bool) []string {
	out := make([]string, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Strings(out)
	return out
}
