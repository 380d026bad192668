package processor_test

import (
	"fmt"
	"math/rand/v2"
	"slices"
	"strings"
	"syscall"
	"testing"
	"time"
)

// zombieChunks is how many chunks the log is produced in by the zombie
// tests (TestFaultZombieItemOwner divides them further).
const zombieChunks = 4

// zombieProcessorChunks is how many chunks TestFaultZombieProcessor
// produces the log in: a round uses one, the rest is produced after the
// rounds.
const zombieProcessorChunks = 8

// zombieRounds is the most stop/continue rounds TestFaultZombieProcessor
// runs; it stops after the first round in which the zombie's writes were
// fenced (a stop that lands after the zombie applied its chunk shows
// none).
const zombieRounds = zombieProcessorChunks

// adminProc is `recstream run` with its admin listener on addr.
type adminProc struct {
	*subprocess
	addr string
}

func (e *faultEnv) startAdminSubprocess(t *testing.T, extra ...string) adminProc {
	t.Helper()
	addr := fmt.Sprintf("127.0.0.1:%d", freePort(t))
	p := e.startSubprocess(t, append([]string{"admin.listen=" + addr}, extra...)...)
	return adminProc{subprocess: p, addr: addr}
}

// zombieCounters are the ingest counters of one process read from /metrics.
type zombieCounters struct {
	consumed, fenced, batches float64
}

// scrapeCounters reads the process's ingest counters, summed over their
// labels; ok is false when it does not answer (not listening yet, or
// stopped).
func scrapeCounters(addr string) (c zombieCounters, ok bool) {
	series, ok := scrapeSeries(addr)
	for k, v := range series {
		name, _, _ := strings.Cut(k, "{")
		switch name {
		case "recstream_events_consumed_total":
			c.consumed += v
		case "recstream_events_fenced_total":
			c.fenced += v
		case "recstream_batches_total":
			c.batches += v
		}
	}
	return c, ok
}

// mustScrape reads the process's counters, waiting up to 10 s for its
// listener; it fails when p exits.
func mustScrape(t *testing.T, p adminProc) zombieCounters {
	t.Helper()
	return mustScrapeWith(t, p, scrapeCounters)
}

// mustScrapeWith runs scrape on p's admin address until it answers (up to
// 10 s); it fails when p exits.
func mustScrapeWith[T any](t *testing.T, p adminProc, scrape func(addr string) (T, bool)) T {
	t.Helper()
	var v T
	waitFor(t, 10*time.Second, "/metrics of "+p.addr, func() bool {
		if err, exited := p.wait(0); exited {
			t.Fatalf("recstream run (admin %s) exited: %v", p.addr, err)
		}
		var ok bool
		v, ok = scrape(p.addr)
		return ok
	})
	return v
}

// waitCommittedTo waits until the ingest group has committed at least
// high on every partition, failing when p exits.
func (e *faultEnv) waitCommittedTo(t *testing.T, p *subprocess, high map[int]int64, timeout time.Duration, what string) {
	t.Helper()
	e.waitGroupCommittedTo(t, p, e.cfg.Kafka.IngestGroup, e.cfg.Kafka.EventsTopic, high, timeout, what)
}

// waitGroupCommittedTo waits until group has committed at least high on
// every partition of topic, failing when p exits.
func (e *faultEnv) waitGroupCommittedTo(t *testing.T, p *subprocess, group, topic string, high map[int]int64, timeout time.Duration, what string) {
	t.Helper()
	waitFor(t, timeout, what, func() bool {
		if err, exited := p.wait(0); exited {
			t.Fatalf("recstream run exited before %s: %v", what, err)
		}
		c := committedOffsets(e.kf, group, topic)
		for part, h := range high {
			if c[part] < h {
				return false
			}
		}
		return true
	})
}

// TestFaultZombieProcessor freezes a real `recstream run` (A) with SIGSTOP
// in the middle of a backlog, when it almost always holds a fetched batch it
// has not applied yet (consumer/batches.go collects the next batch while the
// current one is applied), lets a second process (B) take every partition
// once A's session has timed out and apply past A's position, then resumes A
// with SIGCONT. A finishes what it held: its writes must be rejected by the
// per-partition fences (A's recstream_events_fenced_total grows), and the
// offsets it commits afterwards may move the group's committed offsets
// backwards (kafka-go commits for partitions it no longer owns, its issue
// #1308), which B replays under the fences once A is gone. Rounds repeat,
// B becoming the next round's A, until one shows fenced zombie writes (at
// most one per chunk); then the last process finishes the log and the state must
// equal the reference: nothing lost, nothing applied twice.
func TestFaultZombieProcessor(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 2))
	t.Logf("seed %d", seed)
	group, topic := e.cfg.Kafka.IngestGroup, e.cfg.Kafka.EventsTopic
	// Batches of 50 events: a chunk of the log is about 25 batches, so a
	// stop at a random point of it lands in a backlog, with the next batch
	// fetched while the current one is applied.
	batchArg := "ingest.batch_max_events=50"
	// Item windows of ten batches: A commits every 500 events, so a stop
	// lands with applied batches not yet committed.
	windowArg := "ingest.item_window_events=500"
	chunk := int64(faultEvents / zombieProcessorChunks)

	a := e.startAdminSubprocess(t, batchArg, windowArg)
	shown := 0
	rounds := 0
	for r := 0; r < zombieRounds && shown == 0; r++ {
		rounds++
		// A is caught up: its members and counters are read before the
		// chunk, so that nothing stands between reaching the stop point
		// and the stop.
		var before []groupMember
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: A alone in the group with every partition", r+1), func() bool {
			var state string
			state, before = groupMembers(e.kf, group, topic)
			return state == "Stable" && len(before) == 1 && len(before[0].partitions) == faultPartitions
		})
		aIDs := make([]string, len(before))
		for i, m := range before {
			aIDs[i] = m.id
		}
		aStart, base := mustScrape(t, a), e.committedTotal(t)
		e.produceChunk(t, r, zombieProcessorChunks)
		_, high := e.kf.Offsets(t, topic)
		// The stop point is read from A's own counter: the group's
		// committed offsets move only once per item window.
		at := aStart.consumed + float64(chunk/10+int64(rng.IntN(int(chunk/2))))
		var aBefore zombieCounters // A's last scrape before the stop
		for start := time.Now(); ; time.Sleep(time.Millisecond) {
			if err, exited := a.wait(0); exited {
				t.Fatalf("processor A exited on its own: %v", err)
			}
			if c, ok := scrapeCounters(a.addr); ok && c.consumed >= at {
				aBefore = c
				break
			}
			if time.Since(start) > 60*time.Second {
				t.Fatalf("round %d: timed out waiting for A to apply %v events", r+1, at)
			}
		}
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		time.Sleep(100 * time.Millisecond) // a commit A sent just before the stop lands
		atStop := committedOffsets(e.kf, group, topic)
		var aCommitted int64
		for _, o := range atStop {
			aCommitted += o
		}

		// B joins; A's session (1 s) times out and B takes every partition.
		b := e.startAdminSubprocess(t, batchArg, windowArg)
		took := waitFor(t, 30*time.Second, "B alone in the group with every partition", func() bool {
			if err, exited := b.wait(0); exited {
				t.Fatalf("processor B exited on its own: %v", err)
			}
			state, ms := groupMembers(e.kf, group, topic)
			return state == "Stable" && len(ms) == 1 && !slices.Contains(aIDs, ms[0].id) && len(ms[0].partitions) == faultPartitions
		})
		e.waitCommittedTo(t, b.subprocess, high, 60*time.Second, "B to commit every event produced so far")
		bBefore := mustScrape(t, b)
		t.Logf("round %d: SIGSTOP once A had applied %v events of the chunk (target %v), %d of them committed; B had every partition %s after its start and committed all %d produced so far after %s; B fenced %v of A's writes made before the stop",
			r+1, aBefore.consumed-aStart.consumed, at-aStart.consumed, aCommitted-base, took.Round(time.Millisecond), sum(high), time.Since(stopped).Round(time.Millisecond), bBefore.fenced)

		// A resumes: what it held or was applying is stale.
		if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		resumed := time.Now()
		lowest := map[int]int64{}
		watch := func() {
			for part, o := range committedOffsets(e.kf, group, topic) {
				if l, ok := lowest[part]; !ok || o < l {
					lowest[part] = o
				}
			}
		}
		// A's counters are read until A is back in the group (a commit
		// it was waiting on has gone through with the new generation)
		// and they have not changed for a second.
		last, since := zombieCounters{consumed: -1}, time.Now()
		var firstFenced, rejoined time.Duration
		for time.Since(resumed) < 10*time.Second {
			if err, exited := a.wait(50 * time.Millisecond); exited {
				t.Fatalf("processor A exited after SIGCONT: %v", err)
			}
			watch()
			if rejoined == 0 {
				if state, ms := groupMembers(e.kf, group, topic); state == "Stable" && len(ms) == 2 {
					rejoined = time.Since(resumed)
				}
			}
			c, ok := scrapeCounters(a.addr)
			if !ok {
				continue
			}
			if firstFenced == 0 && c.fenced > aBefore.fenced {
				firstFenced = time.Since(resumed)
			}
			if c != last {
				last, since = c, time.Now()
				continue
			}
			if rejoined > 0 && time.Since(since) > time.Second {
				break
			}
		}
		aAfter := last
		if aAfter.consumed < 0 {
			t.Fatalf("round %d: A's /metrics did not answer within 10 s of SIGCONT", r+1)
		}
		if rejoined == 0 {
			t.Logf("round %d: A was not back in the group within 10 s of SIGCONT; group: %s", r+1, describeGroup(e.kf, group))
		}
		fenced, consumed := aAfter.fenced-aBefore.fenced, aAfter.consumed-aBefore.consumed
		batches := aAfter.batches - aBefore.batches

		// A leaves; B takes every partition again and replays from the
		// committed offsets, which A may have moved backwards.
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err, ok := a.wait(15 * time.Second); !ok {
			t.Fatalf("round %d: A did not exit within 15 s of SIGTERM", r+1)
		} else if err != nil {
			t.Errorf("round %d: A exited with %v after SIGTERM", r+1, err)
		}
		commitFailures := strings.Count(a.log.String(), "committing offsets failed")
		watch()
		e.waitCommittedTo(t, b.subprocess, high, 60*time.Second, "B to commit every event produced so far again")
		bAfter := mustScrape(t, b)
		var back []string
		for part, h := range high {
			if l, ok := lowest[part]; ok && l < h {
				back = append(back, fmt.Sprintf("partition %d to %d (of %d)", part, l, h))
			}
		}
		slices.Sort(back)
		moved := "the group's committed offsets never moved backwards"
		if len(back) > 0 {
			moved = "A's stale commits moved committed offsets backwards: " + strings.Join(back, ", ")
		}
		t.Logf("round %d: from its last scrape before SIGSTOP to its exit A processed %v events in %v batches, %v of them fenced (all after SIGCONT); %s; B then fenced %v replayed events; A logged %d failed commits",
			r+1, consumed, batches, fenced, moved, bAfter.fenced-bBefore.fenced, commitFailures)
		switch {
		case fenced > 0:
			shown++
			t.Logf("round %d: the zombie's stale writes were rejected by the fences (first fenced %s after SIGCONT; A back in the group after %s)",
				r+1, firstFenced.Round(time.Millisecond), rejoined.Round(time.Millisecond))
		case consumed == 0:
			t.Logf("round %d: the stop landed between batches: A held no batch and applied nothing after resuming", r+1)
		default:
			// Between the scrape and the stop A can finish one more batch;
			// an unfenced write after the resume would double events, which
			// the comparison with the reference catches.
			t.Logf("round %d: A applied %v events, none fenced, between the scrape before SIGSTOP and the end (its last batch before the stop)", r+1, consumed)
		}
		a = b
	}
	if shown == 0 {
		t.Fatalf("in %d rounds the zombie never had a write fenced", rounds)
	}
	for r := rounds; r < zombieProcessorChunks; r++ {
		e.produceChunk(t, r, zombieProcessorChunks)
	}
	e.waitDoneWhileRunning(t, a.subprocess, 120*time.Second)
	if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := a.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("last processor: exit %v (exited %v)", err, ok)
	}
	e.checkAgainstReference(t)
	t.Logf("%d rounds, %d with fenced zombie writes; final state identical to the reference", rounds, shown)
}

func sum(m map[int]int64) int64 {
	var n int64
	for _, v := range m {
		n += v
	}
	return n
}
