package processor_test

import (
	"bufio"
	"fmt"
	"math/rand/v2"
	"net/http"
	"slices"
	"strconv"
	"strings"
	"sync"
	"syscall"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
)

// Series of the item owner's metrics (docs/operations.md) read from a
// process's /metrics.
const (
	ownerRefused = `recstream_item_owner_writes_total{result="refused"}`
	ownerWritten = `recstream_item_owner_writes_total{result="written"}`
	ownerApplied = `recstream_item_owner_contributions_total{result="applied"}`
	ownerSkipped = `recstream_item_owner_contributions_total{result="skipped"}`
	ownerItems   = `recstream_item_owner_items`
)

// scrapeSeries reads every series of a process's /metrics, keyed by the
// series as written (name and labels); ok is false when it does not
// answer.
func scrapeSeries(addr string) (map[string]float64, bool) {
	cl := http.Client{Timeout: time.Second}
	resp, err := cl.Get("http://" + addr + "/metrics")
	if err != nil {
		return nil, false
	}
	defer resp.Body.Close()
	if resp.StatusCode != http.StatusOK {
		return nil, false
	}
	out := map[string]float64{}
	sc := bufio.NewScanner(resp.Body)
	sc.Buffer(make([]byte, 64<<10), 1<<20)
	for sc.Scan() {
		line := sc.Text()
		if line == "" || strings.HasPrefix(line, "#") {
			continue
		}
		cut := strings.LastIndexByte(line, '}') + 1
		if cut == 0 {
			cut = strings.IndexByte(line, ' ')
		}
		if cut <= 0 {
			continue
		}
		fs := strings.Fields(line[cut:])
		if len(fs) == 0 {
			continue
		}
		v, err := strconv.ParseFloat(fs[0], 64)
		if err != nil {
			continue
		}
		out[line[:cut]] = v
	}
	return out, sc.Err() == nil
}

// mustScrapeSeries is scrapeSeries waiting up to 10 s for the listener;
// it fails when p exits.
func mustScrapeSeries(t *testing.T, p adminProc) map[string]float64 {
	t.Helper()
	return mustScrapeWith(t, p, scrapeSeries)
}

// itemsCommittedTo waits until the item-owner group committed at least
// high on every partition of the repartition topic, failing when p exits.
func (e *faultEnv) itemsCommittedTo(t *testing.T, p *subprocess, high map[int]int64, timeout time.Duration, what string) {
	t.Helper()
	e.waitGroupCommittedTo(t, p, e.cfg.Kafka.ItemOwnerGroup, e.cfg.Kafka.ItemUpdatesTopic, high, timeout, what)
}

// ownerZombieRounds bounds the rounds of TestFaultZombieItemOwner; it stops
// after the first whose zombie had a write refused.
const ownerZombieRounds = 3

// ownerZombieSubChunks is how many pieces of the log a round produces, one
// every ownerZombieGap, so that events flow while the item owner is frozen.
const (
	ownerZombieSubChunks = 5
	ownerZombieGap       = 200 * time.Millisecond
)

// TestFaultZombieItemOwner freezes a real item owner with SIGSTOP while
// events flow. Three `recstream run` processes with ingest.item_owner: X
// runs the ingest and score roles, A and B only the items role. A alone
// owns the repartition topic and writes items every flush interval; it is
// stopped at a random point of a round's stream, once updates sent are not
// committed, so that it holds
// contributions taken in and not written, for items whose copies it keeps
// from its earlier writes. B joins the item-owner group, takes every
// repartition partition once A's session (1 s) has timed out, reads what A
// had not committed and writes those items past A's copies. Then SIGCONT:
// A's next flush writes from its stale copies, and every such write must be
// refused by the items' versions (A's
// recstream_item_owner_writes_total{result="refused"} grows; A reads the
// items again and the fences skip what B applied). A leaves (SIGTERM), and
// B, as the next round's A, repeats until a round shows refused writes (at
// most three). The rest of the log follows and the final state must equal
// the reference: nothing lost, nothing applied twice.
func TestFaultZombieItemOwner(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 24))
	t.Logf("seed %d", seed)
	group, topic := e.cfg.Kafka.ItemOwnerGroup, e.cfg.Kafka.ItemUpdatesTopic
	itemsArgs := []string{"run.roles=items"}
	x := e.startSubprocess(t, "run.roles=ingest,score")
	a := e.startAdminSubprocess(t, itemsArgs...)
	chunks := zombieChunks * ownerZombieSubChunks

	// produceRound writes round r's pieces of the log in the background.
	produceRound := func(r int) (wait func()) {
		var wg sync.WaitGroup
		wg.Add(1)
		go func() {
			defer wg.Done()
			for i := r * ownerZombieSubChunks; i < (r+1)*ownerZombieSubChunks; i++ {
				per := byPartition(fixedLog().msgs, faultPartitions)
				var chunk []kafka.Message
				for _, pm := range per {
					chunk = append(chunk, pm[len(pm)*i/chunks:len(pm)*(i+1)/chunks]...)
				}
				if err := produceOrderedErr(e.kf, e.cfg.Kafka.EventsTopic, faultPartitions, chunk); err != nil {
					t.Errorf("producing piece %d: %v", i, err)
					return
				}
				time.Sleep(ownerZombieGap)
			}
		}()
		return wg.Wait
	}

	refusedRounds, rounds := 0, 0
	for r := 0; r < ownerZombieRounds && refusedRounds == 0; r++ {
		rounds++
		aStart := mustScrapeSeries(t, a)
		produced := produceRound(r)
		// A has written items of this round (its copies are current) and
		// the stream goes on: stop it at a random point of the round.
		waitFor(t, 30*time.Second, fmt.Sprintf("round %d: A writes items", r+1), func() bool {
			if err, exited := a.wait(0); exited {
				t.Fatalf("item owner A exited on its own: %v", err)
			}
			m, ok := scrapeSeries(a.addr)
			return ok && m[ownerWritten] > aStart[ownerWritten]
		})
		time.Sleep(time.Duration(rng.IntN(int(ownerZombieSubChunks*ownerZombieGap/time.Millisecond/2))) * time.Millisecond)
		// Stop it while updates sent are not committed (taken in or
		// queued, not written), if that comes within 2 s.
		for wait := time.Now(); time.Since(wait) < 2*time.Second; time.Sleep(10 * time.Millisecond) {
			_, h := e.kf.Offsets(t, topic)
			if sum(h) > sum(committedOffsets(e.kf, group, topic)) {
				break
			}
		}
		_, before := groupMembers(e.kf, group, topic)
		aIDs := make([]string, len(before))
		for i, m := range before {
			aIDs[i] = m.id
		}
		aBefore := mustScrapeSeries(t, a)
		if err := a.cmd.Process.Signal(syscall.SIGSTOP); err != nil {
			t.Fatal(err)
		}
		stopped := time.Now()
		time.Sleep(100 * time.Millisecond) // a commit A sent just before the stop lands
		_, highAtStop := e.kf.Offsets(t, topic)
		atStop := committedOffsets(e.kf, group, topic)
		uncommitted := sum(highAtStop) - sum(atStop)

		// B joins; A's session times out and B takes every partition.
		b := e.startAdminSubprocess(t, itemsArgs...)
		took := waitFor(t, 30*time.Second, "B alone in the item-owner group with every partition", func() bool {
			if err, exited := b.wait(0); exited {
				t.Fatalf("item owner B exited on its own: %v", err)
			}
			state, ms := groupMembers(e.kf, group, topic)
			return state == "Stable" && len(ms) == 1 && !slices.Contains(aIDs, ms[0].id) && len(ms[0].partitions) == faultPartitions
		})
		// Every update sent so far (the round's stream has ended: what
		// A held is among them) is written by B.
		produced()
		e.waitCommittedTo(t, x, highOf(t, e, e.cfg.Kafka.EventsTopic), 60*time.Second, "the ingest group to commit the round")
		_, high := e.kf.Offsets(t, topic)
		e.itemsCommittedTo(t, b.subprocess, high, 60*time.Second, "B to commit every item update sent so far")
		bBefore := mustScrapeSeries(t, b)
		t.Logf("round %d: SIGSTOP with %d item updates not committed (A's copies: %v items); B had every partition %s after its start and committed all %d updates sent so far %s after the stop; B wrote %v items, skipped %v contributions",
			r+1, uncommitted, aBefore[ownerItems], took.Round(time.Millisecond), sum(high), time.Since(stopped).Round(time.Millisecond), bBefore[ownerWritten], bBefore[ownerSkipped])

		// A resumes and flushes what it held from its stale copies.
		if err := a.cmd.Process.Signal(syscall.SIGCONT); err != nil {
			t.Fatal(err)
		}
		resumed := time.Now()
		var last map[string]float64
		var since time.Time
		var firstRefused, rejoined time.Duration
		for time.Since(resumed) < 10*time.Second {
			if err, exited := a.wait(50 * time.Millisecond); exited {
				t.Fatalf("item owner A exited after SIGCONT: %v", err)
			}
			if rejoined == 0 {
				if state, ms := groupMembers(e.kf, group, topic); state == "Stable" && len(ms) == 2 {
					rejoined = time.Since(resumed)
				}
			}
			m, ok := scrapeSeries(a.addr)
			if !ok {
				continue
			}
			if firstRefused == 0 && m[ownerRefused] > aBefore[ownerRefused] {
				firstRefused = time.Since(resumed)
			}
			if last == nil || m[ownerWritten] != last[ownerWritten] || m[ownerRefused] != last[ownerRefused] || m[ownerSkipped] != last[ownerSkipped] {
				last, since = m, time.Now()
				continue
			}
			if rejoined > 0 && time.Since(since) > time.Second {
				break
			}
		}
		if last == nil {
			t.Fatalf("round %d: A's /metrics did not answer within 10 s of SIGCONT", r+1)
		}
		refused := last[ownerRefused] - aBefore[ownerRefused]
		written := last[ownerWritten] - aBefore[ownerWritten]
		skipped := last[ownerSkipped] - aBefore[ownerSkipped]

		// A leaves; B owns every partition again and commits everything
		// (A's late commits may have moved the group's offsets back).
		if err := a.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err, ok := a.wait(15 * time.Second); !ok {
			t.Fatalf("round %d: A did not exit within 15 s of SIGTERM", r+1)
		} else if err != nil {
			t.Errorf("round %d: A exited with %v after SIGTERM", r+1, err)
		}
		_, high = e.kf.Offsets(t, topic)
		e.itemsCommittedTo(t, b.subprocess, high, 60*time.Second, "B to commit every item update again")
		bAfter := mustScrapeSeries(t, b)
		t.Logf("round %d: after SIGCONT A had %v writes refused (the first %s after SIGCONT), %v written, %v contributions skipped; A back in the group after %s; after A left B skipped %v more contributions",
			r+1, refused, firstRefused.Round(time.Millisecond), written, skipped, rejoined.Round(time.Millisecond), bAfter[ownerSkipped]-bBefore[ownerSkipped])
		if refused > 0 {
			refusedRounds++
		} else {
			why := "A held nothing when stopped: every update sent was committed"
			if uncommitted > 0 {
				// Seen when A was stopped with a flush in flight: Redis
				// had applied its writes before B read the items (B
				// skips their contributions), A counts them once
				// continued, and it held nothing else.
				why = fmt.Sprintf("what A wrote after SIGCONT (%v items) had reached Redis before B read those items, and it held nothing else", written)
			}
			t.Logf("round %d: no write of A was refused: %s", r+1, why)
		}
		a = b
	}
	if refusedRounds == 0 {
		t.Fatalf("in %d rounds the zombie item owner never had a write refused", rounds)
	}
	for r := rounds; r < zombieChunks; r++ {
		produceRound(r)()
	}
	e.waitDoneWhileRunning(t, x, 120*time.Second)
	_, high := e.kf.Offsets(t, topic)
	e.itemsCommittedTo(t, a.subprocess, high, 60*time.Second, "the item owner to commit every item update")
	for _, p := range []*subprocess{a.subprocess, x} {
		if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
			t.Fatal(err)
		}
		if err, ok := p.wait(30 * time.Second); !ok || err != nil {
			t.Fatalf("exit %v (exited %v) after SIGTERM\n%s", err, ok, p.log.String())
		}
	}
	e.checkAgainstReference(t)
	t.Logf("%d rounds, %d with refused zombie item writes; final state identical to the reference", rounds, refusedRounds)
}

// highOf is the high watermarks of topic.
func highOf(t *testing.T, e *faultEnv, topic string) map[int]int64 {
	t.Helper()
	_, high := e.kf.Offsets(t, topic)
	return high
}
