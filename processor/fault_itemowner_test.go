package processor_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// ownerFlush is the item owners' flush interval in the fault tests
// (faultConfig): several flushes per run, and kills that land between
// them.
const ownerFlush = 300 * time.Millisecond

// ownedView returns a copy of s without what only one of the two item
// write paths keeps (ownedState).
func ownedView(s snapshot, prefix string) snapshot {
	return snapshot{state: ownedState(s.state, prefix), lists: s.lists}
}

// With the item scripts (ingest.item_owner false), one uninterrupted
// processor ends in the state of the reference run with item owners.
func TestItemScriptsMatchReference(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
	e.cfg.Ingest.ItemOwner = false
	_, stop := runProcessor(t, e.cfg)
	e.produceLog(t)
	e.waitDone(t, 120*time.Second)
	stop()
	e.checkAgainstReference(t)
}

// TestFaultItemOwnerCrashSIGKILL is TestFaultCrashSIGKILL with kills
// timed for the item owners: `recstream run` (every role) killed with SIGKILL at six random
// points, mostly between the item owner's flushes (contributions taken in
// and not written) and some between a batch's user write and its item
// sends, and restarted each time: the final state equals the reference.
func TestFaultItemOwnerCrashSIGKILL(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
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
		p := e.startSubprocess(t)
		for !e.reachedOrStalled(t, p, at, 45*time.Second) {
			if restarts == 2 {
				t.Fatalf("%s: no commit in 45s after %d restarts", what, restarts)
			}
			restarts++
			t.Logf("%s: no commit in 45s; group %s: %s; its output:\n%s", what,
				e.cfg.Kafka.IngestGroup, describeGroup(e.kf, e.cfg.Kafka.IngestGroup), p.kill())
			p = e.startSubprocess(t)
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
			// (a run whose item owners commit nothing for 30 s is
			// restarted, as run restarts a stalled run).
			before := itemsCommitted()
			flushed := func() bool {
				_, high := e.kf.Offsets(t, e.cfg.Kafka.ItemUpdatesTopic)
				n := itemsCommitted()
				return n > before || n >= sum(high)
			}
			for start := time.Now(); !flushed(); time.Sleep(10 * time.Millisecond) {
				if err, exited := p.wait(0); exited {
					t.Fatalf("recstream run exited before an item owner flush: %v", err)
				}
				if time.Since(start) < 30*time.Second {
					continue
				}
				if restarts == 2 {
					t.Fatalf("no item owner flush in 30s after %d restarts", restarts)
				}
				restarts++
				t.Logf("no item owner flush in 30s; group %s: %s; its output:\n%s",
					e.cfg.Kafka.ItemOwnerGroup, describeGroup(e.kf, e.cfg.Kafka.ItemOwnerGroup), p.kill())
				p = e.startSubprocess(t)
				start = time.Now()
			}
		}
		time.Sleep(time.Duration(rng.IntN(int(ownerFlush/time.Millisecond))) * time.Millisecond)
		p.kill()
		t.Logf("SIGKILL at %d committed events (target %d); item owners committed %d updates", e.committedTotal(t), at, itemsCommitted())
	}
	if err := <-produced; err != nil {
		t.Fatal(err)
	}
	p := run("final run", -1)
	e.waitDone(t, 60*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("final processor: exit %v (exited %v)\n%s", err, ok, p.log.String())
	}
	e.checkAgainstReference(t)
}
