package processor_test

import (
	"fmt"
	"math/rand/v2"
	"sort"
	"syscall"
	"testing"
	"time"
)

// TestFaultCrashSIGKILL runs `recstream run` as a subprocess, kills it with
// SIGKILL at six random points of the log and restarts it each time: the
// final state equals the reference (nothing lost, nothing applied twice).
func TestFaultCrashSIGKILL(t *testing.T) {
	t.Parallel()
	reference(t)
	e := newFaultEnv(t)
	seed := uint64(time.Now().UnixNano())
	rng := rand.New(rand.NewPCG(seed, 1))
	t.Logf("seed %d", seed)
	points := make([]int64, 6)
	for i := range points {
		points[i] = int64(rng.IntN(faultEvents*9/10)) + faultEvents/20
	}
	sort.Slice(points, func(i, j int) bool { return points[i] < points[j] })
	e.produceLog(t)
	// A run during which neither group commits anything for 45 s is stopped
	// (its output and the groups' state go to the test log) and restarted,
	// at most twice in the whole test, as an orchestrator's liveness check
	// would: seen on loaded machines after several kills in a row, with the
	// run's group join or fetches from the test broker stalling. The final
	// state is compared with the reference all the same.
	restarts := 0
	run := func(what string, at int64) *subprocess {
		p := e.startSubprocess(t)
		for !e.reachedOrStalled(t, p, at, 45*time.Second) {
			if restarts == 2 {
				t.Fatalf("%s: no commit in 45s after %d restarts", what, restarts)
			}
			restarts++
			t.Logf("%s: no commit in 45s; group %s: %s; group %s: %s; its output:\n%s", what,
				e.cfg.Kafka.IngestGroup, describeGroup(e.kf, e.cfg.Kafka.IngestGroup),
				e.cfg.Kafka.ScoreGroup, describeGroup(e.kf, e.cfg.Kafka.ScoreGroup), p.kill())
			p = e.startSubprocess(t)
		}
		return p
	}
	kills := 0
	for _, at := range points {
		p := run(fmt.Sprintf("run to %d committed events", at), at)
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // mid-batch
		p.kill()
		kills++
		t.Logf("SIGKILL at %d committed events (target %d)", e.committedTotal(t), at)
	}
	p := run("final run", -1)
	// When the log was already done, run returns at once; a SIGTERM that
	// comes before the run has installed its handler kills it outright.
	time.Sleep(time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("final processor: exit %v (exited %v)\n%s", err, ok, p.log.String())
	}
	e.checkAgainstReference(t)
	t.Logf("%d kills, final state identical to the reference", kills)
}

// reachedOrStalled waits until the ingest group has committed at events
// (at >= 0), or else all of the log and the score group and the item
// owners all of their topics (true), or until a window passes in which no
// group commits anything (false); it fails when p exits.
func (e *faultEnv) reachedOrStalled(t *testing.T, p *subprocess, at int64, window time.Duration) bool {
	t.Helper()
	progress := func() (int64, bool) {
		n := e.committedTotal(t)
		if at >= 0 {
			return n, n >= at
		}
		done := n >= faultEvents
		// and the groups after ingest (score, item owners): every
		// message of their topics committed
		for _, w := range e.groups()[1:] {
			_, high := e.kf.Offsets(t, w.topic)
			c := committedOffsets(e.kf, w.group, w.topic)
			for part, h := range high {
				n += max(c[part], 0)
				if c[part] < h {
					done = false
				}
			}
		}
		return n, done
	}
	last, since := int64(-1), time.Now()
	poll := 50 * time.Millisecond
	if at >= 0 {
		poll = 5 * time.Millisecond // the kill should land near at
	}
	for {
		if err, exited := p.wait(poll); exited {
			t.Fatalf("recstream run exited on its own: %v\n%s", err, p.log.String())
		}
		n, done := progress()
		switch {
		case done:
			return true
		case n > last:
			last, since = n, time.Now()
		case time.Since(since) > window:
			return false
		}
	}
}
