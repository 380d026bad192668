package processor_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"strings"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
)

// ownerFlush is the item owners' flush interval in these tests: several
// flushes per run, and kills that land between them.
const ownerFlush = 300 * time.Millisecond

// newOwnerEnv is newFaultEnv with ingest.item_owner on and the
// repartition topic created.
func newOwnerEnv(t *testing.T) *faultEnv {
	t.Helper()
	def := config.Default()
	kf := kafkatest.Start(t, faultPartitions, append(faultTopics(), def.Kafka.ItemUpdatesTopic)...)
	rs := redistest.Start(t)
	cfg := faultConfig(kf.Brokers, rs.Addr)
	cfg.Ingest.ItemOwner = true
	cfg.Ingest.ItemFlushInterval = ownerFlush
	// Every batch committed (the item window holds only the experiment
	// counters now): kills land between any two batches.
	cfg.Ingest.ItemWindow = 0
	return &faultEnv{kf: kf, rs: rs, cfg: cfg}
}

// ownerSets are the --set arguments of a subprocess with item owners.
func ownerSets() []string {
	return []string{"ingest.item_owner=true", "ingest.item_flush_interval=" + ownerFlush.String()}
}

// waitItemsDone waits until the item owners committed every message of
// the repartition topic (after the ingest group committed the log, every
// message is in it).
func (e *faultEnv) waitItemsDone(t *testing.T, timeout time.Duration) {
	t.Helper()
	waitAllCommitted(t, e.kf, e.cfg.Kafka.ItemOwnerGroup, e.cfg.Kafka.ItemUpdatesTopic, timeout)
}

// checkOwnedAgainstReference is checkAgainstReference for a run with item
// owners, whose reference is the run without: the same keys and values,
// except what only one of the two write paths keeps (the item writes'
// version v, trending's fences and versions) and the bound c.
func (e *faultEnv) checkOwnedAgainstReference(t *testing.T) {
	t.Helper()
	want := ownedView(reference(t), e.cfg.Redis.KeyPrefix)
	if d := e.topicDiff(t); len(d) > 0 {
		t.Fatalf("the events topic does not hold the fixed log:\n%s", strings.Join(d, "\n"))
	}
	if dl := e.kf.ReadAll(t, e.cfg.Kafka.DLQTopic, 30*time.Second); len(dl) > 0 {
		t.Errorf("%d dead letters from a log of valid events, the first from %s", len(dl), deadLetterSource(dl[0]))
	}
	got := takeSnapshot(t, e.cfg, e.rs)
	owned := 0
	for k, v := range got.state {
		if _, ok := v.floats["v"]; ok && strings.HasSuffix(k, "}:m") && strings.Contains(k, "{i:") {
			owned++
		}
	}
	got = ownedView(got, e.cfg.Redis.KeyPrefix)
	if owned == 0 {
		t.Fatal("no item was written by an item owner")
	}
	if d := diffSnapshots(got, want); len(d) > 0 {
		t.Fatalf("final state differs from the reference (%d vs %d keys):\n%s", len(got.state), len(want.state), strings.Join(d, "\n"))
	}
}

// ownedView returns a copy of s without what only one of the two item
// write paths keeps (ownedState).
func ownedView(s snapshot, prefix string) snapshot {
	return snapshot{state: ownedState(s.state, prefix), lists: s.lists}
}

// With item owners, one uninterrupted processor ends in the state of the
// reference run without them.
func TestItemOwnerMatchesReference(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newOwnerEnv(t)
	_, stop := runProcessor(t, e.cfg)
	e.produceLog(t)
	e.waitDone(t, 120*time.Second)
	e.waitItemsDone(t, 60*time.Second)
	stop()
	e.checkOwnedAgainstReference(t)
}

// TestFaultItemOwnerCrashSIGKILL is TestFaultCrashSIGKILL with item
// owners: `recstream run` (every role) killed with SIGKILL at six random
// points, mostly between the item owner's flushes (contributions taken in
// and not written) and some between a batch's user write and its item
// sends, and restarted each time: the final state equals the reference.
func TestFaultItemOwnerCrashSIGKILL(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newOwnerEnv(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	points := make([]int64, 6)
	for i := range points {
		points[i] = int64(rng.IntN(faultEvents*9/10)) + faultEvents/20
	}
	sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
	// The log arrives in 20 chunks over about 10 s, so that the ingest
	// role commits batch by batch and kills land mid-stream (between a
	// batch's user write and its item sends too), not after a backlog
	// was ingested at once.
	produced := make(chan error, 1)
	go func() {
		per := byPartition(fixedLog().msgs, faultPartitions)
		const n = 20
		for i := 0; i < n; i++ {
			var chunk []kafka.Message
			for _, pm := range per {
				chunk = append(chunk, pm[len(pm)*i/n:len(pm)*(i+1)/n]...)
			}
			if err := produceOrderedErr(e.kf, e.cfg.Kafka.EventsTopic, faultPartitions, chunk); err != nil {
				produced <- err
				return
			}
			time.Sleep(500 * time.Millisecond)
		}
		produced <- nil
	}()
	// A run during which neither group commits anything for 45 s is
	// stopped and restarted, at most twice in the test, as in
	// TestFaultCrashSIGKILL (the test broker has been seen keeping killed
	// runs' members in the groups, holding their partitions).
	restarts := 0
	run := func(what string, at int64) *subprocess {
		p := e.startSubprocess(t, ownerSets()...)
		for !e.reachedOrStalled(t, p, at, 45*time.Second) {
			if restarts == 2 {
				t.Fatalf("%s: no commit in 45s after %d restarts", what, restarts)
			}
			restarts++
			t.Logf("%s: no commit in 45s; group %s: %s; its output:\n%s", what,
				e.cfg.Kafka.IngestGroup, describeGroup(e.kf, e.cfg.Kafka.IngestGroup), p.kill())
			p = e.startSubprocess(t, ownerSets()...)
		}
		return p
	}
	itemsCommitted := func() int64 {
		return sum(committedOffsets(e.kf, e.cfg.Kafka.ItemOwnerGroup, e.cfg.Kafka.ItemUpdatesTopic))
	}
	for i, at := range points {
		p := run(fmt.Sprintf("run to %d committed events", at), at)
		if i%2 == 1 {
			// after the item owner committed a flush of this run, so that
			// the next run starts from a committed offset within the topic
			before := itemsCommitted()
			waitFor(t, 30*time.Second, "an item owner flush", func() bool {
				_, high := e.kf.Offsets(t, e.cfg.Kafka.ItemUpdatesTopic)
				n := itemsCommitted()
				return n > before || n >= sum(high)
			})
		}
		time.Sleep(time.Duration(rng.IntN(int(ownerFlush/time.Millisecond))) * time.Millisecond)
		p.kill()
		t.Logf("SIGKILL at %d committed events (target %d); item owners committed %d updates", e.committedTotal(t), at, itemsCommitted())
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	p := run("final run", -1)
	e.waitItemsDone(t, 60*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("final processor: exit %v (exited %v)\n%s", err, ok, p.log.String())
	}
	e.checkOwnedAgainstReference(t)
}
