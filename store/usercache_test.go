package store

import (
	"context"
	"fmt"
	"maps"
	"math"
	"runtime"
	"runtime/debug"
	"slices"
	"sync"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/redistest"
)

// copyRig applies the same batches to a store keeping copies and to a
// reference store keeping none, on a clock the test moves.
type copyRig struct {
	t     *testing.T
	ctx   context.Context
	rdb   redis.UniversalClient
	clock time.Time
	s     *Store // copies kept
	ref   *Store // no copies
	next  map[int32]int64
	heap  heapReading // what s reads of the runtime
}

func newCopyRig(t *testing.T, cache int, idle time.Duration) *copyRig {
	r := &copyRig{t: t, ctx: context.Background(), rdb: redistest.Start(t).Client(t), clock: time.Unix(1_700_000_000, 0), next: make(map[int32]int64)}
	opts := func(prefix string, cache int) Options {
		o := OptionsFromConfig(config.Default())
		o.Prefix, o.UserCache, o.CopyIdle = prefix, cache, idle
		o.Now = func() time.Time { return r.clock }
		return o
	}
	r.s, r.ref = New(r.rdb, opts("c:", cache)), New(r.rdb, opts("r:", 0))
	r.heap = heapReading{limit: math.MaxInt64}
	r.s.heap = func() heapReading { return r.heap }
	return r
}

// apply applies one batch of partition p: a click of each user, at the
// clock's time.
func (r *copyRig) apply(p int32, users ...string) {
	r.t.Helper()
	var ops []Op
	for i, u := range users {
		ops = append(ops, Op{Offset: r.next[p], User: u, Item: fmt.Sprintf("i%d", i%3), Type: event.Click, TS: r.clock.UnixMilli()})
		r.next[p]++
	}
	for _, s := range []*Store{r.s, r.ref} {
		if _, err := s.Apply(r.ctx, p, ops); err != nil {
			r.t.Fatal(err)
		}
	}
}

// kept returns the users whose copies s keeps, sorted, and checks the
// gauge against them.
func (r *copyRig) kept() []string {
	r.t.Helper()
	var out []string
	for _, c := range r.s.userCaches() {
		c.mu.Lock()
		out = slices.AppendSeq(out, maps.Keys(c.byID))
		c.mu.Unlock()
	}
	slices.Sort(out)
	if g := int(testutil.ToFloat64(r.s.opt.UserMetrics.Copies)); g != len(out) {
		r.t.Fatalf("recstream_ingest_user_copies %d, %d copies kept", g, len(out))
	}
	return out
}

func (r *copyRig) evicted(reason string) int {
	return int(testutil.ToFloat64(r.s.opt.UserMetrics.Evicted.WithLabelValues(reason)))
}

func (r *copyRig) users(copy string) int {
	return int(testutil.ToFloat64(r.s.opt.UserMetrics.Users.WithLabelValues(copy)))
}

// same checks that both stores hold the same keys for users.
func (r *copyRig) same(users []string) {
	r.t.Helper()
	for _, u := range users {
		want, _ := userKeyContents(r.t, r.ctx, r.rdb, r.ref.keys, u, true)
		got, _ := userKeyContents(r.t, r.ctx, r.rdb, r.s.keys, u, true)
		if !maps.Equal(want, got) {
			r.t.Fatalf("user %s: keys differ from the store without copies\nwant %v\ngot  %v", u, want, got)
		}
	}
}

func names(prefix string, n int) []string {
	out := make([]string, n)
	for i := range out {
		out[i] = fmt.Sprintf("%s%d", prefix, i)
	}
	return out
}

// Over three quarters of the memory limit, the least recently used
// quarter of all partitions' copies goes, once per garbage collection;
// under it, or without a limit, nothing goes. The users dropped are read
// again by their next batch, which leaves the keys as a store without
// copies does.
func TestUserCopiesTrimmedOverMemoryLimit(t *testing.T) {
	r := newCopyRig(t, 100, 0)
	var all []string
	// Four partitions, two rounds of five new users each, one second
	// apart: p0's first round is the oldest, p3's second the newest.
	for round := range 2 {
		for p := range int32(4) {
			r.clock = r.clock.Add(time.Second)
			us := names(fmt.Sprintf("p%d-r%d-u", p, round), 5)
			r.apply(p, us...)
			all = append(all, us...)
		}
	}
	slices.Sort(all)
	if got := r.kept(); !slices.Equal(got, all) {
		t.Fatalf("kept %v, want every user", got)
	}

	r.heap = heapReading{live: 750, limit: 1000, cycles: 1}
	r.s.trimUserCopies()
	if got := len(r.kept()); got != 40 {
		t.Fatalf("at three quarters of the limit: %d copies kept, want 40", got)
	}
	r.heap.live = 751
	r.s.trimUserCopies()
	want := slices.DeleteFunc(slices.Clone(all), func(u string) bool { return u[3:5] == "r0" && (u[:2] == "p0" || u[:2] == "p1") })
	if got := r.kept(); !slices.Equal(got, want) {
		t.Fatalf("over the limit: kept %v, want %v (the first round of p0 and p1 dropped)", got, want)
	}
	if n := r.evicted("memory"); n != 10 {
		t.Fatalf("%d copies counted as evicted for memory, want 10", n)
	}
	r.s.trimUserCopies()
	if got := len(r.kept()); got != 30 {
		t.Fatalf("trimmed again within one collection: %d copies kept, want 30", got)
	}
	// The next collection still finds the heap over: 8 more (a quarter
	// of 30, rounded up) go, p2's first round and three of p3's.
	r.heap.cycles++
	r.s.trimUserCopies()
	kept := r.kept()
	if len(kept) != 22 || r.evicted("memory") != 18 {
		t.Fatalf("second trim: %d copies kept (want 22), %d evicted for memory (want 18)", len(kept), r.evicted("memory"))
	}
	for _, u := range kept {
		if u[:5] == "p2-r0" {
			t.Fatalf("%s kept after the second trim", u)
		}
	}
	r.heap = heapReading{live: 1 << 40, limit: math.MaxInt64, cycles: r.heap.cycles + 1}
	r.s.trimUserCopies()
	if got := len(r.kept()); got != 22 {
		t.Fatalf("without a memory limit: %d copies kept, want 22", got)
	}

	// Every user again: the 22 kept from memory, the 18 dropped read.
	memory, read := r.users("memory"), r.users("read")
	r.clock = r.clock.Add(time.Second)
	for p := range int32(4) {
		r.apply(p, append(names(fmt.Sprintf("p%d-r0-u", p), 5), names(fmt.Sprintf("p%d-r1-u", p), 5)...)...)
	}
	if m, rd := r.users("memory")-memory, r.users("read")-read; m != 22 || rd != 18 {
		t.Fatalf("after the trims: %d users from memory, %d read; want 22 and 18", m, rd)
	}
	r.same(all)
}

// A copy no batch used for ingest.user_cache_idle goes at the next trim;
// one used since stays.
func TestUserCopiesIdleDropped(t *testing.T) {
	r := newCopyRig(t, 100, 5*time.Minute)
	start := r.clock
	r.apply(0, "a", "b")
	r.clock = start.Add(3 * time.Minute)
	r.apply(1, "c")
	r.clock = start.Add(4 * time.Minute)
	r.apply(0, "a")
	r.s.trimUserCopies()
	if got := r.kept(); !slices.Equal(got, []string{"a", "b", "c"}) {
		t.Fatalf("before any copy is idle: kept %v", got)
	}
	r.clock = start.Add(5*time.Minute + time.Second)
	r.s.trimUserCopies()
	if got := r.kept(); !slices.Equal(got, []string{"a", "c"}) || r.evicted("idle") != 1 {
		t.Fatalf("b idle: kept %v, %d evicted as idle", got, r.evicted("idle"))
	}
	r.clock = start.Add(8*time.Minute + time.Second)
	r.s.trimUserCopies()
	if got := r.kept(); len(got) != 1 || got[0] != "a" {
		t.Fatalf("c idle: kept %v", got)
	}
	r.clock = start.Add(9*time.Minute + time.Second)
	r.s.trimUserCopies()
	if got := r.kept(); len(got) != 0 || r.evicted("idle") != 3 {
		t.Fatalf("a idle: kept %v, %d evicted as idle", got, r.evicted("idle"))
	}
	read := r.users("read")
	r.apply(0, "a", "b")
	r.apply(1, "c")
	if n := r.users("read") - read; n != 3 {
		t.Fatalf("%d users read after they were dropped as idle, want 3", n)
	}
	r.same([]string{"a", "b", "c"})
}

// When the group assigns the process other partitions, the copies of
// the partitions it lost go; a batch of a lost partition applied later
// (fetched before) reads its users and keeps them again. Assignments and
// trims racing with batches keep the gauge exact: a partition revoked
// while its batch is applied loses its copies when the batch ends,
// without making the caller (the Kafka group's goroutine) wait.
func TestUserCopiesOfRevokedPartitionsDropped(t *testing.T) {
	r := newCopyRig(t, 100, time.Minute)
	r.apply(0, "a", "b")
	r.apply(1, "c")
	r.apply(2, "d", "e")
	r.s.AssignedPartitions([]int{1, 3})
	if got := r.kept(); !slices.Equal(got, []string{"c"}) || r.evicted("revoked") != 4 {
		t.Fatalf("after partitions 0 and 2 were revoked: kept %v, %d evicted as revoked", got, r.evicted("revoked"))
	}
	read := r.users("read")
	r.apply(0, "a")
	if n := r.users("read") - read; n != 1 {
		t.Fatalf("%d users read, want 1", n)
	}
	if got := r.kept(); !slices.Equal(got, []string{"a", "c"}) {
		t.Fatalf("kept %v", got)
	}
	r.s.AssignedPartitions([]int{})
	if got := r.kept(); len(got) != 0 || r.evicted("revoked") != 6 {
		t.Fatalf("after every partition was revoked: kept %v, %d evicted as revoked", got, r.evicted("revoked"))
	}
	r.same([]string{"a", "b", "c", "d", "e"})

	// A batch of the partition in flight (its lock held): the call
	// returns at once, and the copies go when the batch ends.
	r.apply(2, "d", "e")
	c := r.s.userCacheOf(2)
	c.mu.Lock()
	r.s.AssignedPartitions([]int{0})
	if n := r.evicted("revoked"); n != 6 {
		t.Fatalf("%d evicted as revoked while the batch is in flight, want 6", n)
	}
	c.mu.Unlock()
	r.settled()
	if n := r.evicted("revoked"); n != 8 {
		t.Fatalf("%d evicted as revoked once the batch ended, want 8", n)
	}

	// Concurrently: batches of two partitions, assignments and trims.
	var wg sync.WaitGroup
	stop := make(chan struct{})
	wg.Add(1)
	go func() {
		defer wg.Done()
		for i := 0; ; i++ {
			select {
			case <-stop:
				return
			default:
			}
			r.s.AssignedPartitions([]int{i % 3})
			r.s.heap = func() heapReading { return heapReading{live: 1000, limit: 1000, cycles: uint64(i)} }
			r.s.trimUserCopies()
			time.Sleep(time.Millisecond)
		}
	}()
	var aw sync.WaitGroup
	for p := range int32(2) {
		aw.Add(1)
		go func() {
			defer aw.Done()
			ops := make([]Op, 0, 4)
			for off := range int64(60) {
				ops = append(ops[:0], Op{Offset: 100 + off, User: fmt.Sprintf("q%d-%d", p, off%7), Item: "i1", Type: event.Browse, TS: r.clock.UnixMilli()})
				if _, err := r.s.Apply(r.ctx, p, ops); err != nil {
					t.Error(err)
					return
				}
			}
		}()
	}
	aw.Wait()
	close(stop)
	wg.Wait()
	r.settled()
}

// settled waits until the copies of partitions revoked while their batch
// was applied are gone (in the background, once the batch ends), and
// checks the gauge.
func (r *copyRig) settled() {
	r.t.Helper()
	for deadline := time.Now().Add(10 * time.Second); ; time.Sleep(10 * time.Millisecond) {
		kept := 0
		for _, c := range r.s.userCaches() {
			c.mu.Lock()
			kept += c.len()
			c.mu.Unlock()
		}
		if int(testutil.ToFloat64(r.s.opt.UserMetrics.Copies)) == kept || time.Now().After(deadline) {
			r.kept()
			return
		}
	}
}

// readHeap reads the runtime's live heap, memory limit and collections.
func TestReadHeap(t *testing.T) {
	defer debug.SetMemoryLimit(debug.SetMemoryLimit(-1))
	debug.SetMemoryLimit(math.MaxInt64)
	if h := readHeap(); h.limit != math.MaxInt64 {
		t.Fatalf("without a limit: limit %d, want math.MaxInt64", h.limit)
	}
	debug.SetMemoryLimit(300 << 20)
	runtime.GC()
	h := readHeap()
	if h.limit != 300<<20 || h.live == 0 || h.cycles == 0 {
		t.Fatalf("with a limit of 300 MiB after a collection: %+v", h)
	}
	runtime.GC()
	if n := readHeap().cycles; n <= h.cycles {
		t.Fatalf("collections %d, then %d after one more", h.cycles, n)
	}
}
