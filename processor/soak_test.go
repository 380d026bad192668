package processor_test

import (
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
)

// The soak: a log produced at a fixed rate for a long time, consumed by two
// `recstream run` processes while one fault a minute or so hits them, Redis
// or the broker; at the end the state must equal that of the same log
// through one uninterrupted processor (docs/reliability.md, "Soak").
//
//	RECSTREAM_SOAK=30m go test ./processor -run TestSoak -v -timeout 60m
//
// RECSTREAM_SOAK_RATE sets the events offered per second (default 3,000),
// RECSTREAM_SOAK_SEED the seed of the fault schedule (default: the clock;
// it is logged), RECSTREAM_SOAK_STALL the stall bound (default 60s).
// With item owners (the default) the two processes run every role and a
// third one only the item owner (items), and the process faults hit any
// of the three; RECSTREAM_SOAK_ITEM_SCRIPTS=1 runs the two processes
// with ingest.item_owner false (the item scripts).

const (
	soakUsers   = 2000
	soakItems   = 200
	soakBrokers = 3
	// soakStallBound is how long after a fault every partition of the
	// events topic must have had an offset committed past where it stood
	// when the fault ended (RECSTREAM_SOAK_STALL overrides it).
	soakStallBound = 60 * time.Second
	soakMinGap     = 30 * time.Second // between the starts of two faults
	soakMaxGap     = 60 * time.Second
)

var soakLogStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

const soakStep = 100 * time.Millisecond // event time between loadgen events

// soakGen generates the soak's log: loadgen events with a fixed clock and
// impressions before a third of the clicks, carts and purchases (as
// fixedLog), keyed by user, in an order fixed by the seeds; message k is the
// same in every run.
type soakGen struct {
	gen     *loadgen.Generator
	rng     *rand.Rand
	pending []event.Event
	users   map[string]bool
	n       int64 // messages generated
	k       int64 // loadgen events generated
}

func newSoakGen() *soakGen {
	return &soakGen{
		gen:   loadgen.New(loadgen.Options{Users: soakUsers, Items: soakItems, Clusters: 6, Affinity: 0.85, Seed: 2412, Start: soakLogStart, Step: soakStep}),
		rng:   rand.New(rand.NewPCG(2412, 24)),
		users: map[string]bool{},
	}
}

func (g *soakGen) next() kafka.Message {
	if len(g.pending) == 0 {
		ev := g.gen.Next()
		g.k++
		if ev.Type != event.Browse && g.rng.IntN(3) == 0 {
			shown := &event.Shown{}
			at := g.rng.IntN(4)
			for k := 0; k < 4; k++ {
				it := loadgen.ItemID(g.rng.IntN(soakItems))
				if k == at {
					it = ev.ItemID
				}
				shown.Items = append(shown.Items, it)
				shown.Sources = append(shown.Sources, loadgen.Sources[k%len(loadgen.Sources)])
			}
			g.pending = append(g.pending, event.Event{UserID: ev.UserID, Type: event.Impression, TS: ev.TS - 1, Shown: shown})
		}
		g.pending = append(g.pending, ev)
	}
	ev := g.pending[0]
	g.pending = g.pending[1:]
	g.users[ev.UserID] = true
	b, err := event.Encode(ev)
	if err != nil {
		panic(err)
	}
	g.n++
	return kafka.Message{Key: []byte(ev.UserID), Value: b}
}

func (g *soakGen) take(n int) []kafka.Message {
	out := make([]kafka.Message, n)
	for i := range out {
		out[i] = g.next()
	}
	return out
}

func (g *soakGen) sortedUsers() []string {
	us := make([]string, 0, len(g.users))
	for u := range g.users {
		us = append(us, u)
	}
	sort.Strings(us)
	return us
}

// soakClock is the clock of the final rescore: a day after the last event.
func soakClock(g *soakGen) func() time.Time {
	at := soakLogStart.Add(time.Duration(g.k)*soakStep + 24*time.Hour)
	return func() time.Time { return at }
}

// soakProducer offers the log at a fixed rate, in order per partition
// (produceOrderedErr), from its own goroutine.
type soakProducer struct {
	gen      *soakGen
	produced atomic.Int64
	cancel   context.CancelFunc
	done     chan struct{}
	err      error // read after done
}

func startSoakProducer(kf *kafkatest.Cluster, topic string, rate int) *soakProducer {
	ctx, cancel := context.WithCancel(context.Background())
	p := &soakProducer{gen: newSoakGen(), cancel: cancel, done: make(chan struct{})}
	go func() {
		defer close(p.done)
		start := time.Now()
		tick := time.NewTicker(50 * time.Millisecond)
		defer tick.Stop()
		for {
			select {
			case <-ctx.Done():
				return
			case <-tick.C:
			}
			due := int64(float64(rate)*time.Since(start).Seconds()) - p.produced.Load()
			if due <= 0 {
				continue
			}
			// Behind after a slow produce: catch up in steps of at most
			// half a second's worth, so that a stop is not delayed.
			n := int(min(due, int64(max(rate/2, 1))))
			if err := produceOrderedErr(kf, topic, faultPartitions, p.gen.take(n)); err != nil {
				p.err = err
				return
			}
			p.produced.Add(int64(n))
		}
	}()
	return p
}

// stop stops producing and returns how many messages were produced.
func (p *soakProducer) stop() (int64, error) {
	p.cancel()
	<-p.done
	return p.produced.Load(), p.err
}

// soakFault is one injected fault and how the pipeline recovered from it.
type soakFault struct {
	kind      string
	at        time.Duration // since the start of the soak
	detail    string
	lagStart  int64         // events produced but not committed when it began
	lagMax    int64         // the most seen after it, until its watch ended
	first     time.Duration // from the end of the fault to the first commit
	all       time.Duration // from the end of the fault until every partition committed past where it stood then
	fromStart time.Duration // from the start of the fault until every partition committed past where it stood at the start
	during    []int64       // per partition: how far its committed offset moved while the fault lasted
	caughtUp  time.Duration // from the end of the fault until the lag was back to lagStart (or one second of events), -1 if not before the next fault or the end
	// with item owners: from the end of the fault until every partition
	// of the repartition topic had an item-owner commit past where it
	// stood then (-1: not before the next fault or the end)
	itemsAll time.Duration
}

// soakRun is the state of one soak.
type soakRun struct {
	t     *testing.T
	e     *faultEnv
	procs []*subprocess
	args  [][]string // each process's extra --set arguments
	addrs []string   // each process's admin listener
	// with ingest.item_owner: the item owners' counters summed over the
	// processes' lives (read before each kill and at the end), and the
	// stall watch of the item-owner group
	itemOwner      bool
	ownerCounts    map[string]float64
	itemsLastTotal int64
	itemsLastMove  time.Time
	prod           *soakProducer
	rate           int
	stall          time.Duration // soakStallBound or RECSTREAM_SOAK_STALL
	start          time.Time
	faults         []*soakFault
	// for the stall watch between faults
	lastTotal int64
	lastMove  time.Time
	// the current fault, its start and the offsets then: every sample
	// (during the fault too) checks whether every partition moved past them
	cur      *soakFault
	curBegan time.Time
	curStart soakSample
}

// soakSample is the events topic's high watermarks and the ingest group's
// committed offsets at one moment.
type soakSample struct {
	high, committed map[int]int64
}

func (s soakSample) lag() int64 {
	var n int64
	for p, h := range s.high {
		n += h - s.committed[p]
	}
	return n
}

func (s soakSample) total() int64 { return sum(s.committed) }

// highWatermarks is Cluster.Offsets that does not fail the test (a leader
// move makes a ListOffsets fail until the client sees new metadata).
func highWatermarks(kf *kafkatest.Cluster, topic string) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	var reqs []kafka.OffsetRequest
	for _, p := range allPartitions(faultPartitions) {
		reqs = append(reqs, kafka.LastOffsetOf(p))
	}
	res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, po.Error
		}
		out[po.Partition] = po.LastOffset
	}
	if len(out) != faultPartitions {
		return nil, fmt.Errorf("offsets of %d partitions", len(out))
	}
	return out, nil
}

// sample reads the offsets; ok is false when the broker did not answer.
func (r *soakRun) sample() (soakSample, bool) {
	cfg := r.e.cfg.Kafka
	high, err := highWatermarks(r.e.kf, cfg.EventsTopic)
	if err != nil {
		return soakSample{}, false
	}
	// committedOffsets leaves out partitions without a commit; nil is
	// a failed request.
	c := committedOffsets(r.e.kf, cfg.IngestGroup, cfg.EventsTopic)
	if c == nil {
		return soakSample{}, false
	}
	return soakSample{high: high, committed: c}, true
}

// mustSample retries sample for up to 30 s.
func (r *soakRun) mustSample() soakSample {
	deadline := time.Now().Add(30 * time.Second)
	for {
		if s, ok := r.sample(); ok {
			return s
		}
		if time.Now().After(deadline) {
			r.fail("the broker did not answer offset requests for 30 s")
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// check fails the soak when a processor exited on its own, the producer
// failed, or the ingest group committed nothing for the stall bound while
// events were waiting.
func (r *soakRun) check(s soakSample, haveSample bool) {
	for i, p := range r.procs {
		if p == nil {
			continue
		}
		if err, exited := p.wait(0); exited {
			r.fail(fmt.Sprintf("processor %d exited on its own: %v", i, err))
		}
	}
	select {
	case <-r.prod.done:
		if r.prod.err != nil {
			r.fail(fmt.Sprintf("producer: %v", r.prod.err))
		}
	default:
	}
	if !haveSample {
		return
	}
	if f := r.cur; f != nil && f.fromStart == 0 && movedPast(s, r.curStart) {
		f.fromStart = time.Since(r.curBegan)
	}
	if tot := s.total(); tot != r.lastTotal || s.lag() == 0 {
		r.lastTotal, r.lastMove = tot, time.Now()
	} else if time.Since(r.lastMove) > r.stall {
		r.fail(fmt.Sprintf("commit stall: the ingest group committed nothing for %s with %d events waiting", time.Since(r.lastMove).Round(time.Second), s.lag()))
	}
	if r.itemOwner {
		is, ok := r.itemsSample()
		if !ok {
			return
		}
		if tot := is.total(); tot != r.itemsLastTotal || is.lag() == 0 {
			r.itemsLastTotal, r.itemsLastMove = tot, time.Now()
		} else if time.Since(r.itemsLastMove) > r.stall {
			r.fail(fmt.Sprintf("commit stall: the item-owner group committed nothing for %s with %d item updates waiting", time.Since(r.itemsLastMove).Round(time.Second), is.lag()))
		}
	}
}

// itemsSample is sample for the repartition topic and the item-owner
// group.
func (r *soakRun) itemsSample() (soakSample, bool) {
	cfg := r.e.cfg.Kafka
	high, err := highWatermarks(r.e.kf, cfg.ItemUpdatesTopic)
	if err != nil {
		return soakSample{}, false
	}
	c := committedOffsets(r.e.kf, cfg.ItemOwnerGroup, cfg.ItemUpdatesTopic)
	if c == nil {
		return soakSample{}, false
	}
	return soakSample{high: high, committed: c}, true
}

// startProc starts process i with its arguments and a new admin listener.
func (r *soakRun) startProc(i int) {
	r.addrs[i] = fmt.Sprintf("127.0.0.1:%d", freePort(r.t))
	r.procs[i] = r.e.startSubprocess(r.t, append([]string{"admin.listen=" + r.addrs[i]}, r.args[i]...)...)
}

// countOwner adds process i's item-owner counters to the totals (a
// process that does not answer within 2 s is not counted).
func (r *soakRun) countOwner(i int) {
	if !r.itemOwner {
		return
	}
	deadline := time.Now().Add(2 * time.Second)
	for {
		if m, ok := scrapeSeries(r.addrs[i]); ok {
			for _, k := range []string{ownerWritten, ownerRefused, ownerApplied, ownerSkipped} {
				r.ownerCounts[k] += m[k]
			}
			return
		}
		if time.Now().After(deadline) {
			r.t.Logf("process %d's /metrics did not answer: its item-owner counters are not counted", i)
			return
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// idle watches the pipeline until t.
func (r *soakRun) idle(until time.Time) {
	for time.Now().Before(until) {
		s, ok := r.sample()
		r.check(s, ok)
		time.Sleep(min(250*time.Millisecond, time.Until(until)))
	}
}

// fail stops the soak with the groups' state; the processes' output
// follows from startSubprocess's cleanup.
func (r *soakRun) fail(msg string) {
	r.t.Helper()
	cfg := r.e.cfg.Kafka
	var b strings.Builder
	fmt.Fprintf(&b, "%s (%s into the soak)\ngroup %s: %s\ngroup %s: %s", msg, time.Since(r.start).Round(time.Second),
		cfg.IngestGroup, describeGroup(r.e.kf, cfg.IngestGroup), cfg.ScoreGroup, describeGroup(r.e.kf, cfg.ScoreGroup))
	if s, ok := r.sample(); ok {
		fmt.Fprintf(&b, "\nhigh watermarks %v, committed %v", s.high, s.committed)
	}
	r.t.Fatal(b.String())
}

// inject runs one fault of the kind and returns when it has ended (the
// killed process restarted, the stopped one continued, Redis up again, the
// leaders moved).
func (r *soakRun) inject(kind string, rng *rand.Rand) string {
	r.t.Helper()
	hold := func(d time.Duration) { r.idle(time.Now().Add(d)) }
	switch kind {
	case "sigkill":
		i := rng.IntN(len(r.procs))
		pause := time.Duration(rng.IntN(2000)) * time.Millisecond
		r.countOwner(i)
		r.procs[i].kill()
		r.procs[i] = nil // down: not checked
		hold(pause)
		r.startProc(i)
		return fmt.Sprintf("processor %d%s killed, restarted after %s", i, r.roles(i), pause)
	case "sigstop":
		i := rng.IntN(len(r.procs))
		d := time.Duration(3000+rng.IntN(5000)) * time.Millisecond
		if err := r.procs[i].cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			r.fail(fmt.Sprintf("SIGSTOP: %v", err))
		}
		// While it is stopped: when do the other processes hold every
		// partition of the events topic (and, with item owners, of the
		// repartition topic) between them, and what did the groups look
		// like last?
		cfg := r.e.cfg.Kafka
		type watch struct {
			name, group, topic string
			before             int // members before the stop
			took               time.Duration
			state              string
			members            []groupMember
		}
		var ws []*watch
		if r.runs(i, config.RoleIngest) {
			ws = append(ws, &watch{name: "ingest", group: cfg.IngestGroup, topic: cfg.EventsTopic, before: r.members(config.RoleIngest)})
		}
		if r.itemOwner && r.runs(i, config.RoleItems) {
			ws = append(ws, &watch{name: "item-owner", group: cfg.ItemOwnerGroup, topic: cfg.ItemUpdatesTopic, before: r.members(config.RoleItems)})
		}
		stopped := time.Now()
		for time.Since(stopped) < d {
			s, ok := r.sample()
			r.check(s, ok)
			for _, w := range ws {
				if w.took != 0 {
					continue
				}
				w.state, w.members = groupMembers(r.e.kf, w.group, w.topic)
				held := 0
				for _, m := range w.members {
					held += len(m.partitions)
				}
				if w.state == "Stable" && len(w.members) == w.before-1 && held == faultPartitions {
					w.took = time.Since(stopped)
				}
			}
			time.Sleep(min(250*time.Millisecond, d-time.Since(stopped)))
		}
		if err := r.procs[i].cmd.Process.Signal(syscall.SIGCONT); err != nil {
			r.fail(fmt.Sprintf("SIGCONT: %v", err))
		}
		var others []string
		for _, w := range ws {
			if w.took == 0 {
				others = append(others, fmt.Sprintf("the others never had every partition of the %s group; its last state %q with %d members %v", w.name, w.state, len(w.members), w.members))
			} else {
				others = append(others, fmt.Sprintf("the others had every partition of the %s group after %s", w.name, w.took.Round(10*time.Millisecond)))
			}
		}
		return fmt.Sprintf("processor %d%s stopped for %s (session timeout %s); %s", i, r.roles(i), d, r.e.cfg.Kafka.SessionTimeout, strings.Join(others, "; "))
	case "redis":
		d := time.Duration(2000+rng.IntN(4000)) * time.Millisecond
		r.e.rs.Kill(r.t)
		hold(d)
		r.e.rs.Restart(r.t)
		return fmt.Sprintf("redis-server killed, restarted from its AOF after %s", d)
	case "leaders":
		before := r.leaders()
		r.e.kf.ShufflePartitionLeaders()
		after := r.leaders()
		moved := 0
		for k, v := range after {
			if before[k] != v {
				moved++
			}
		}
		return fmt.Sprintf("partition leaders shuffled: %d of %d partitions moved (%v)", moved, len(after), after)
	}
	panic("unknown fault " + kind)
}

// runs reports whether process i runs role.
func (r *soakRun) runs(i int, role string) bool {
	for _, a := range r.args[i] {
		if v, ok := strings.CutPrefix(a, "run.roles="); ok {
			return slices.Contains(strings.Split(v, ","), role)
		}
	}
	return true // every role
}

// members is how many processes run role.
func (r *soakRun) members(role string) int {
	n := 0
	for i := range r.procs {
		if r.runs(i, role) {
			n++
		}
	}
	return n
}

// roles describes process i's roles when they are not every role.
func (r *soakRun) roles(i int) string {
	for _, a := range r.args[i] {
		if v, ok := strings.CutPrefix(a, "run.roles="); ok {
			return " (" + v + ")"
		}
	}
	return ""
}

// leaders maps "topic/partition" to the leader's node id for the events
// and refresh topics (and the repartition topic with item owners).
func (r *soakRun) leaders() map[string]int32 {
	out := map[string]int32{}
	topics := []string{r.e.cfg.Kafka.EventsTopic, r.e.cfg.Kafka.RefreshTopic}
	if r.itemOwner {
		topics = append(topics, r.e.cfg.Kafka.ItemUpdatesTopic)
	}
	for _, topic := range topics {
		for p := int32(0); p < faultPartitions; p++ {
			out[fmt.Sprintf("%s/%d", topic, p)] = r.e.kf.LeaderFor(topic, p)
		}
	}
	return out
}

// recover watches the pipeline after fault f ended until every partition
// committed past where it stood then, failing after the stall bound; then
// until the lag is back, at most until next.
// movedPast reports whether every partition's committed offset in s is
// past the one in base.
func movedPast(s, base soakSample) bool {
	for p := range base.high {
		if s.committed[p] <= base.committed[p] {
			return false
		}
	}
	return true
}

// movedOrDone is movedPast that also takes a partition whose committed
// offset in s is at its high watermark (nothing new to commit).
func movedOrDone(s, base soakSample) bool {
	for p := range base.high {
		if s.committed[p] <= base.committed[p] && s.committed[p] < s.high[p] {
			return false
		}
	}
	return true
}

func (r *soakRun) recover(f *soakFault, atStart soakSample, next time.Time) {
	end := time.Now()
	base := r.mustSample()
	f.lagMax = max(f.lagMax, base.lag())
	for p := 0; p < faultPartitions; p++ {
		f.during = append(f.during, base.committed[p]-atStart.committed[p])
	}
	f.caughtUp = -1
	target := max(f.lagStart, int64(r.rate))
	var itemsBase soakSample
	itemsDone := !r.itemOwner
	if r.itemOwner {
		for {
			var ok bool
			if itemsBase, ok = r.itemsSample(); ok {
				break
			}
			if time.Since(end) > 30*time.Second {
				r.fail("the broker did not answer offset requests of the repartition topic for 30 s")
			}
			time.Sleep(100 * time.Millisecond)
		}
		f.itemsAll = -1
	}
	for {
		s, ok := r.sample()
		r.check(s, ok)
		if !itemsDone {
			if is, ok := r.itemsSample(); ok && movedOrDone(is, itemsBase) {
				f.itemsAll, itemsDone = time.Since(end), true
			} else if time.Since(end) > r.stall {
				r.fail(fmt.Sprintf("commit stall after fault %s (%s): the item-owner group did not commit on every partition for %s after it ended", f.kind, f.detail, r.stall))
			}
		}
		if ok {
			f.lagMax = max(f.lagMax, s.lag())
			if f.first == 0 && s.total() > base.total() {
				f.first = time.Since(end)
			}
			if f.all == 0 && movedPast(s, base) {
				f.all = time.Since(end)
			}
			if f.all > 0 && f.caughtUp < 0 && s.lag() <= target {
				f.caughtUp = time.Since(end)
			}
			if f.all > 0 && f.fromStart > 0 && itemsDone && (f.caughtUp >= 0 || !time.Now().Before(next)) {
				return
			}
			if f.all == 0 && time.Since(end) > r.stall {
				var stuck []string
				for p := range base.high {
					if s.committed[p] <= base.committed[p] {
						stuck = append(stuck, fmt.Sprintf("%d at %d (high %d)", p, s.committed[p], s.high[p]))
					}
				}
				sort.Strings(stuck)
				r.fail(fmt.Sprintf("commit stall after fault %s (%s): partitions %s had no commit for %s after it ended",
					f.kind, f.detail, strings.Join(stuck, ", "), r.stall))
			}
		}
		time.Sleep(100 * time.Millisecond)
	}
}

// soakConfig is faultConfig with next-item rows that are never folded
// (a row names up to twice the items: each item and its purchase).
func soakConfig(brokers []string, redisAddr string) config.Config {
	cfg := faultConfig(brokers, redisAddr)
	cfg.Model.NextCap = 5000
	return cfg
}

func soakEnv(t *testing.T) (dur time.Duration, rate int, seed uint64, stall time.Duration) {
	v := os.Getenv("RECSTREAM_SOAK")
	if v == "" {
		t.Skip("set RECSTREAM_SOAK to a duration (e.g. 30m) to run the soak")
	}
	dur, err := time.ParseDuration(v)
	if err != nil || dur <= 0 {
		t.Fatalf("RECSTREAM_SOAK=%q: want a duration such as 30m", v)
	}
	rate = 3000
	if v := os.Getenv("RECSTREAM_SOAK_RATE"); v != "" {
		if rate, err = strconv.Atoi(v); err != nil || rate <= 0 {
			t.Fatalf("RECSTREAM_SOAK_RATE=%q: want events per second", v)
		}
	}
	seed = uint64(time.Now().UnixNano())
	if v := os.Getenv("RECSTREAM_SOAK_SEED"); v != "" {
		if seed, err = strconv.ParseUint(v, 10, 64); err != nil {
			t.Fatalf("RECSTREAM_SOAK_SEED=%q: %v", v, err)
		}
	}
	stall = soakStallBound
	if v := os.Getenv("RECSTREAM_SOAK_STALL"); v != "" {
		if stall, err = time.ParseDuration(v); err != nil || stall <= 0 {
			t.Fatalf("RECSTREAM_SOAK_STALL=%q: want a duration", v)
		}
	}
	return dur, rate, seed, stall
}

// TestSoak produces a deterministic log at a fixed rate for RECSTREAM_SOAK
// to three brokers, consumed by two `recstream run` processes, with one
// fault every 30 to 60 s: a processor killed and restarted, a processor
// stopped past its session timeout and continued (a zombie), redis-server
// killed and restarted from its AOF (appendfsync always: what it
// acknowledged survives), the partition leaders shuffled. After each fault
// every partition must commit again within the stall bound (60 s). At the end the
// state must equal that of the same log through one uninterrupted
// processor.
func TestSoak(t *testing.T) {
	dur, rate, seed, stall := soakEnv(t)
	rng := rand.New(rand.NewPCG(seed, 24))
	t.Logf("soak of %s at %d events/s; fault seed %d (RECSTREAM_SOAK_SEED); stall bound %s", dur, rate, seed, stall)

	itemOwner := os.Getenv("RECSTREAM_SOAK_ITEM_SCRIPTS") != "1"
	topics := faultTopics()
	kf := kafkatest.StartOpts(t, faultPartitions, topics, kfake.NumBrokers(soakBrokers))
	rs := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	e := &faultEnv{kf: kf, rs: rs, cfg: soakConfig(kf.Brokers, rs.Addr)}
	r := &soakRun{t: t, e: e, rate: rate, stall: stall, itemOwner: itemOwner, args: [][]string{nil, nil}}
	e.cfg.Ingest.ItemOwner = itemOwner
	if itemOwner {
		// Two processes with every role and an item owner alone.
		r.args = [][]string{nil, nil, {"run.roles=items"}}
		r.ownerCounts = map[string]float64{}
		t.Logf("with item owners (ingest.item_owner, flush every %s): processes 0 and 1 run every role, process 2 the items role", ownerFlush)
	}
	r.procs, r.addrs = make([]*subprocess, len(r.args)), make([]string, len(r.args))
	recstreamBinary(t)
	for i := range r.procs {
		r.startProc(i)
	}
	r.start, r.lastMove, r.itemsLastMove = time.Now(), time.Now(), time.Now()
	r.prod = startSoakProducer(kf, e.cfg.Kafka.EventsTopic, rate)
	t.Cleanup(func() { r.prod.stop() })

	kinds := []string{"sigkill", "sigstop", "redis", "leaders"}
	var cycle []string
	end := r.start.Add(dur)
	next := r.start.Add(soakMinGap + time.Duration(rng.Int64N(int64(soakMaxGap-soakMinGap))))
	for {
		until := next
		if end.Before(until) {
			until = end
		}
		r.idle(until)
		if !time.Now().Before(end) {
			break
		}
		if len(cycle) == 0 { // every kind once per cycle, in random order
			cycle = slices.Clone(kinds)
			rng.Shuffle(len(cycle), func(i, j int) { cycle[i], cycle[j] = cycle[j], cycle[i] })
		}
		kind := cycle[0]
		cycle = cycle[1:]
		began := time.Now()
		f := &soakFault{kind: kind, at: began.Sub(r.start)}
		s := r.mustSample()
		f.lagStart = s.lag()
		r.cur, r.curBegan, r.curStart = f, began, s
		f.detail = r.inject(kind, rng)
		next = r.start.Add(f.at + soakMinGap + time.Duration(rng.Int64N(int64(soakMaxGap-soakMinGap))))
		watchTo := next
		if end.Before(watchTo) {
			watchTo = end
		}
		r.recover(f, s, watchTo)
		r.cur = nil
		r.faults = append(r.faults, f)
		caught := "not before the next fault"
		if f.caughtUp >= 0 {
			caught = f.caughtUp.Round(10 * time.Millisecond).String()
		}
		items := ""
		if r.itemOwner {
			items = fmt.Sprintf("; every repartition partition committed by the item owners %s after it ended", f.itemsAll.Round(10*time.Millisecond))
		}
		t.Logf("fault %d at %s: %s: %s; lag %d events at its start, at most %d; committed per partition while it lasted %v; first commit %s and every partition %s after it ended (%s after it began); lag back to %d after %s%s",
			len(r.faults), f.at.Round(time.Second), kind, f.detail, f.lagStart, f.lagMax, f.during,
			f.first.Round(10*time.Millisecond), f.all.Round(10*time.Millisecond), f.fromStart.Round(10*time.Millisecond), max(f.lagStart, int64(rate)), caught, items)
	}

	produced, err := r.prod.stop()
	if err != nil {
		t.Fatalf("producer: %v", err)
	}
	elapsed := time.Since(r.start)
	t.Logf("produced %d events in %s (%.0f/s)", produced, elapsed.Round(time.Second), float64(produced)/elapsed.Seconds())

	// Drain: both groups commit everything, then a graceful stop.
	drain := time.Now()
	cfg := e.cfg.Kafka
	drains := []struct{ group, topic string }{{cfg.IngestGroup, cfg.EventsTopic}, {cfg.ScoreGroup, cfg.RefreshTopic}}
	if itemOwner {
		drains = append(drains, struct{ group, topic string }{cfg.ItemOwnerGroup, cfg.ItemUpdatesTopic})
	}
	for _, w := range drains {
		deadline := time.Now().Add(10 * time.Minute)
		for {
			high, err := highWatermarks(kf, w.topic)
			c := committedOffsets(kf, w.group, w.topic)
			done := err == nil && c != nil
			for p, h := range high {
				if c[p] < h {
					done = false
				}
			}
			if done {
				break
			}
			s, ok := r.sample()
			r.check(s, ok)
			if time.Now().After(deadline) {
				r.fail(fmt.Sprintf("%s did not commit all of %s within 10 minutes of the end", w.group, w.topic))
			}
			time.Sleep(200 * time.Millisecond)
		}
	}
	t.Logf("every group committed everything %s after the producer stopped", time.Since(drain).Round(100*time.Millisecond))
	for i, p := range r.procs {
		r.countOwner(i)
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err, ok := p.wait(30 * time.Second); !ok || err != nil {
			t.Fatalf("processor %d: exit %v after SIGTERM (exited %v)\n%s", i, err, ok, p.log.String())
		}
	}
	if dl := kf.ReadAll(t, cfg.DLQTopic, 30*time.Second); len(dl) > 0 {
		t.Errorf("%d dead letters from a log of valid events, the first from %s", len(dl), deadLetterSource(dl[0]))
	}
	soakHigh, err := highWatermarks(kf, cfg.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	users := r.prod.gen.sortedUsers()
	clock := soakClock(r.prod.gen)
	got := takeSnapshotOf(t, e.cfg, rs, users, clock)

	// The reference: the same log through one uninterrupted processor.
	refStart := time.Now()
	ref := newFaultEnv(t)
	ref.cfg = soakConfig(ref.kf.Brokers, ref.rs.Addr)
	// Ingest only: the snapshots leave the written lists out and score
	// every user from the state, so the score role would only slow the
	// reference down (it rescored users while the whole log was applied).
	// The item scripts: the soak is also checked against the other
	// item write path.
	ref.cfg.Run.Roles = []string{config.RoleIngest}
	ref.cfg.Ingest.ItemOwner = false
	_, stop := runProcessor(t, ref.cfg)
	gen := newSoakGen()
	for left := produced; left > 0; {
		n := min(left, 50000)
		produceOrdered(t, ref.kf, ref.cfg.Kafka.EventsTopic, faultPartitions, gen.take(int(n)))
		left -= n
	}
	refHigh, err := highWatermarks(ref.kf, ref.cfg.Kafka.EventsTopic)
	if err != nil {
		t.Fatal(err)
	}
	for p := range refHigh {
		if refHigh[p] != soakHigh[p] {
			t.Fatalf("partition %d holds %d events in the soak and %d in the reference: the log was not reproduced", p, soakHigh[p], refHigh[p])
		}
	}
	t.Logf("reference: log produced after %s", time.Since(refStart).Round(time.Second))
	waitAllCommitted(t, ref.kf, ref.cfg.Kafka.IngestGroup, ref.cfg.Kafka.EventsTopic, 20*time.Minute)
	stop()
	want := takeSnapshotOf(t, ref.cfg, ref.rs, gen.sortedUsers(), soakClock(gen))
	t.Logf("reference: %d events, %d keys, %d users in %s", produced, len(want.state), len(want.lists), time.Since(refStart).Round(time.Second))

	r.summary(produced, elapsed)
	if itemOwner {
		// The reference ran without item owners: compare what both
		// write paths keep (ownedView), and check that item owners wrote.
		owned := itemsOwnersWrote(got)
		if owned == 0 {
			t.Fatal("no item was written by an item owner")
		}
		got, want = ownedView(got, e.cfg.Redis.KeyPrefix), ownedView(want, ref.cfg.Redis.KeyPrefix)
		c := r.ownerCounts
		t.Logf("item owners over the processes' lives: %.0f items written, %.0f writes refused, %.0f contributions applied, %.0f skipped (%d items written by an item owner)",
			c[ownerWritten], c[ownerRefused], c[ownerApplied], c[ownerSkipped], owned)
	}
	if d := diffSnapshots(got, want); len(d) > 0 {
		t.Fatalf("final state differs from the reference (%d vs %d keys):\n%s", len(got.state), len(want.state), strings.Join(d, "\n"))
	}
	t.Logf("final state identical to the reference: nothing lost, nothing applied twice")
}

// summary logs the faults by kind and the recovery times.
func (r *soakRun) summary(produced int64, elapsed time.Duration) {
	byKind := map[string][]*soakFault{}
	for _, f := range r.faults {
		byKind[f.kind] = append(byKind[f.kind], f)
	}
	mmm := func(ds []time.Duration) string {
		slices.Sort(ds)
		return fmt.Sprintf("%s/%s/%s", ds[0].Round(10*time.Millisecond), ds[len(ds)/2].Round(10*time.Millisecond), ds[len(ds)-1].Round(10*time.Millisecond))
	}
	stats := func(fs []*soakFault) string {
		if len(fs) == 0 {
			return "none"
		}
		var ended, began []time.Duration
		for _, f := range fs {
			ended, began = append(ended, f.all), append(began, f.fromStart)
		}
		out := fmt.Sprintf("%d; every partition committing again (min/median/max) %s after the fault ended, %s after it began", len(fs), mmm(ended), mmm(began))
		if r.itemOwner {
			var items []time.Duration
			for _, f := range fs {
				if f.itemsAll >= 0 {
					items = append(items, f.itemsAll)
				}
			}
			if len(items) > 0 {
				out += fmt.Sprintf("; every repartition partition committed by the item owners %s after it ended", mmm(items))
			}
		}
		return out
	}
	var kinds []string
	for k := range byKind {
		kinds = append(kinds, k)
	}
	sort.Strings(kinds)
	var b strings.Builder
	fmt.Fprintf(&b, "summary: %s, %d events (%.0f/s), %d faults: %s", elapsed.Round(time.Second), produced, float64(produced)/elapsed.Seconds(), len(r.faults), stats(r.faults))
	for _, k := range kinds {
		fmt.Fprintf(&b, "\n  %s: %s", k, stats(byKind[k]))
	}
	r.t.Log(b.String())
}
