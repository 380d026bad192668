package scorer

import (
	"math"
	"math/bits"
	"slices"
	"sync"

	"github.com/recstream/recstream/store"
)

// Candidate is one scored item of a user before filtering.
type Candidate struct {
	Item    string
	Score   float64      // blended score
	Sources SourceScores // raw score per source
	Reason  string
	Source  string // the source that contributed most

	reasons []sourceReason // per source
}

// SourceScore is one source's score of a candidate.
type SourceScore struct {
	Source string
	Score  float64
}

// SourceScores are a candidate's scores per source, in the order the
// sources first scored it.
type SourceScores []SourceScore

// Get returns the score of source and whether it scored the candidate.
func (ss SourceScores) Get(source string) (float64, bool) {
	for _, x := range ss {
		if x.Source == source {
			return x.Score, true
		}
	}
	return 0, false
}

// Of returns the score of source, 0 when it did not score the candidate.
func (ss SourceScores) Of(source string) float64 {
	v, _ := ss.Get(source)
	return v
}

type sourceReason struct{ source, reason string }

func (c *Candidate) reason(source string) string {
	for _, r := range c.reasons {
		if r.source == source {
			return r.reason
		}
	}
	return ""
}

// The sources by index, in the order Score applies them: a candidate's
// per-source scores sit in an array by index, and a Candidate lists them
// in this order, which is the order they first scored it.
const (
	srcItemKNN = iota
	srcUserKNN
	srcEASE
	srcContent
	srcNew
	srcNext
	srcTrending
	srcPopular
	numSources
)

var sourceNames = [numSources]string{SourceItemKNN, SourceUserKNN, SourceEASE, SourceContent, SourceNew, SourceNextItem, SourceTrending, SourcePopular}

// sourceIndex returns the index of a source name, -1 for none.
func sourceIndex(name string) int {
	for i, n := range sourceNames {
		if n == name {
			return i
		}
	}
	return -1
}

// because is the reason an item the user interacted with gives: it names
// the interaction, "bought" for an item the user bought, else the
// strongest type of the user's recent events on it; an item known only
// from the user's weights (older than the recent events) is named
// without a verb.
func because(p store.Profile, item string) string {
	if p.Purchased[item] {
		return "because you bought " + item
	}
	switch p.Acted[item] {
	case "purchase":
		return "because you bought " + item
	case "add_to_cart":
		return "because you added " + item + " to your cart"
	case "click":
		return "because you clicked " + item
	case "browse":
		return "because you viewed " + item
	}
	return "similar to " + item
}

// userKNNReason is the reason user-kNN gives every candidate.
const userKNNReason = "popular with shoppers like you"

// candRow is one candidate of a user while it is scored and ranked. A user
// has thousands of candidates and only the few that reach the list need a
// Candidate, so the scoring and ranking work on these rows: no pointers,
// one slice, reused from a pool (a Candidate with its per-source slices
// per candidate was a quarter of a rescore's CPU).
type candRow struct {
	vals  [numSources]float64 // raw score per source
	score float64             // blended
	best  float64             // item-kNN, then next-item: the source's largest single contribution so far (0 between them)
	id    int32               // item number
	seed  int32               // item-kNN: the user's seed (by place) of the largest single contribution
	has   uint8               // bit s: source s scored the candidate
	top   int8                // the source that contributed most, -1 for none
	own   bool                // the item is one of the user's own (ExcludeSeen drops it)
	nseed int8                // next-item: the user's latest item (by place) of the largest single contribution
	nbuy  bool                // next-item: the transitions from that item were mostly purchases
}

// candTable holds one user's candidates by place: the order they were
// first scored in.
type candTable struct {
	rows []candRow
	why  [numSources][]string // reasons given as text, by place; sized when first given
	mat  []*Candidate         // the Candidates made of the rows, by place

	// Blocks the Candidates are carved from, a few dozen at a time, not
	// allocated one by one (with their scores and reasons, three
	// allocations each). What a block handed out stays with the
	// Candidates; only its rest is used after the table is recycled.
	cblk []Candidate
	sblk []SourceScore
	rblk []sourceReason
}

// candChunk is how many Candidates a block holds.
const candChunk = 32

// carve returns an empty slice with room for n taken from the block blk,
// which is replaced by one of room for chunk (or n) when too small.
func carve[T any](blk *[]T, n, chunk int) []T {
	if cap(*blk)-len(*blk) < n {
		*blk = make([]T, 0, max(chunk, n))
	}
	l := len(*blk)
	*blk = (*blk)[:l+n]
	return (*blk)[l : l : l+n]
}

var tablePool = sync.Pool{New: func() any { return new(candTable) }}

// UserScores are all of one user's candidates.
type UserScores struct {
	Profile     store.Profile
	Unavailable map[string]bool // items the stored catalog marks unavailable

	t         *candTable
	seeds     []store.Scored   // the user's seeds: item-kNN's reasons name them
	nextSeeds []string         // the user's latest items: next-item's reasons name them
	cat       Catalog          // the popular source's reasons name the item's category
	ease      *easeIndex       // the EASE model that scored the candidates, for their reasons
	easeOwn   []easeOwn        // the user's items the EASE model holds
	names     []string         // item names by number, once Score has returned
	byItem    map[string]int32 // place by item, built when Candidate is first asked
	list      []*Candidate     // every candidate, built when Candidates is first asked
	items     *callItems       // while Score runs: the item numbers
	sc        *scratch         // while Score runs: per-item working memory
}

// Candidates returns every candidate, in the order they were first scored.
func (us *UserScores) Candidates() []*Candidate {
	if us.list == nil && us.t != nil {
		us.list = make([]*Candidate, len(us.t.rows))
		for k := range us.t.rows {
			us.list[k] = us.cand(int32(k))
		}
	}
	return us.list
}

// Candidate returns the candidate for item, nil when there is none.
func (us *UserScores) Candidate(item string) *Candidate {
	if us.t == nil {
		return nil
	}
	if us.byItem == nil {
		us.byItem = make(map[string]int32, len(us.t.rows))
		for k, r := range us.t.rows {
			us.byItem[us.names[r.id]] = int32(k)
		}
	}
	k, ok := us.byItem[item]
	if !ok {
		return nil
	}
	return us.cand(k)
}

// cand returns the Candidate of place k (the same one each time).
func (us *UserScores) cand(k int32) *Candidate {
	t := us.t
	if n := len(t.rows); len(t.mat) < n {
		t.mat = append(t.mat, make([]*Candidate, n-len(t.mat))...)
	}
	if c := t.mat[k]; c != nil {
		return c
	}
	r := &t.rows[k]
	n := bits.OnesCount8(r.has)
	c := &carve(&t.cblk, 1, candChunk)[:1][0]
	*c = Candidate{Item: us.names[r.id], Score: r.score, Sources: carve(&t.sblk, n, candChunk*2),
		reasons: carve(&t.rblk, n, candChunk*2)}
	for h := r.has; h != 0; h &= h - 1 {
		s := bits.TrailingZeros8(h)
		c.Sources = append(c.Sources, SourceScore{sourceNames[s], r.vals[s]})
		if why := us.reason(k, s); why != "" {
			c.reasons = append(c.reasons, sourceReason{sourceNames[s], why})
		}
	}
	if r.top >= 0 {
		c.Source = sourceNames[r.top]
		c.Reason = c.reason(c.Source)
	}
	t.mat[k] = c
	return c
}

// reason returns the reason source s gives the candidate at place k.
func (us *UserScores) reason(k int32, s int) string {
	switch s {
	case srcItemKNN:
		if seed := us.t.rows[k].seed; seed >= 0 {
			return because(us.Profile, us.seeds[seed].ID)
		}
		return ""
	case srcUserKNN:
		return userKNNReason
	case srcNext:
		return us.nextReason(k)
	case srcEASE:
		if seed := us.easeSeed(k); seed != "" {
			return because(us.Profile, seed)
		}
		return ""
	case srcPopular:
		if us.cat != nil {
			if c := us.cat.Category(us.item(int(k))); c != "" {
				return "popular in " + c
			}
		}
		return "popular"
	}
	if why := us.t.why[s]; int(k) < len(why) {
		return why[k]
	}
	return ""
}

// item returns the item of place k.
func (us *UserScores) item(k int) string {
	if us.items != nil {
		return us.items.names[us.t.rows[k].id]
	}
	return us.names[us.t.rows[k].id]
}

// len returns the number of candidates.
func (us *UserScores) len() int {
	if us.t == nil {
		return 0
	}
	return len(us.t.rows)
}

// at returns the place of the user's candidate for item number id, made
// when there is none (only while Score runs).
func (us *UserScores) at(id int32) int32 {
	if int(id) >= len(us.sc.slot) {
		us.sc.fit(max(int(id)+1, len(us.items.names)))
	}
	if k := us.sc.slot[id]; k > 0 {
		return k - 1
	}
	if us.t == nil {
		us.t = tablePool.Get().(*candTable)
	}
	us.t.rows = append(us.t.rows, candRow{id: id, seed: -1, top: -1, nseed: -1})
	k := int32(len(us.t.rows))
	us.sc.slot[id] = k
	return k - 1
}

// clearBest sets every candidate's best back to 0 for the next source.
func (us *UserScores) clearBest() {
	if us.t != nil {
		for k := range us.t.rows {
			us.t.rows[k].best = 0
		}
	}
}

// note sets source s's score of the candidate at place k, and the reason
// it gives when not empty.
func (us *UserScores) note(k int32, s int, score float64, reason string) {
	r := &us.t.rows[k]
	r.vals[s] = score
	r.has |= 1 << s
	if reason == "" {
		return
	}
	why := us.t.why[s]
	if int(k) >= len(why) {
		// Past len the slice is zero: recycle clears what was used.
		n := len(us.t.rows)
		why = slices.Grow(why, n-len(why))[:n]
	}
	why[k] = reason
	us.t.why[s] = why
}

// setReason sets item's score from source, and the reason when not empty
// (only while Score runs).
func (us *UserScores) setReason(item, source string, score float64, reason string) {
	us.note(us.at(us.items.id(item)), sourceIndex(source), score, reason)
}

// blend normalises each source by its maximum for this user, weights and sums
// them, and names as reason the source that contributed most.
func (us *UserScores) blend(opt Options) {
	if us.t == nil {
		return
	}
	ws := [numSources]float64{opt.WeightItemKNN, opt.WeightUserKNN, opt.WeightEASE, opt.WeightContent, opt.WeightNew, opt.WeightNext, opt.WeightTrending, opt.WeightPopular}
	var mx [numSources]float64
	rows := us.t.rows
	for i := range rows {
		r := &rows[i]
		for h := r.has; h != 0; h &= h - 1 {
			s := bits.TrailingZeros8(h)
			if r.vals[s] > mx[s] {
				mx[s] = r.vals[s]
			}
		}
	}
	for i := range rows {
		r := &rows[i]
		r.score, r.top = 0, -1
		best := -1.0
		for h := r.has; h != 0; h &= h - 1 {
			s := bits.TrailingZeros8(h)
			if mx[s] <= 0 {
				continue
			}
			x := ws[s] * r.vals[s] / mx[s]
			r.score += x
			if x > best {
				best, r.top = x, int8(s)
			}
		}
	}
}

// discount multiplies the blended score of each candidate shown k times
// since its last click (shown: item -> k) by factor^k.
func (us *UserScores) discount(shown map[string]int, factor float64) {
	if us.t == nil || len(shown) == 0 {
		return
	}
	for k := range us.t.rows {
		if n := shown[us.item(k)]; n > 0 {
			us.t.rows[k].score *= math.Pow(factor, float64(n))
		}
	}
}

// markOwn marks the candidates among the user's own items (by number).
func (us *UserScores) markOwn(ids []int32) {
	for _, id := range ids {
		if int(id) < len(us.sc.slot) {
			if k := us.sc.slot[id]; k > 0 {
				us.t.rows[k-1].own = true
			}
		}
	}
}

// release clears what the user's pass left in the scratch memory and
// detaches it.
func (us *UserScores) release() {
	if us.t != nil {
		for _, r := range us.t.rows {
			us.sc.slot[r.id] = 0
		}
	}
	us.names = us.items.names
	us.items, us.sc = nil, nil
}

// recycle hands the user's candidate rows back to the pool; us must not be
// used afterwards (the Candidates made of them stay valid).
func (us *UserScores) recycle() {
	if t := us.t; t != nil {
		t.rows = t.rows[:0]
		for s := range t.why {
			clear(t.why[s])
			t.why[s] = t.why[s][:0]
		}
		clear(t.mat)
		t.mat = t.mat[:0]
		tablePool.Put(t)
	}
	*us = UserScores{}
}
