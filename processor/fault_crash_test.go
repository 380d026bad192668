package processor_test

import (
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
	kills := 0
	for _, at := range points {
		p := e.startSubprocess(t)
		deadline := time.Now().Add(60 * time.Second)
		for e.committedTotal(t) < at {
			if _, exited := p.wait(5 * time.Millisecond); exited {
				t.Fatalf("processor exited on its own: %v\n%s", p.err, p.log.String())
			}
			if time.Now().After(deadline) {
				t.Fatalf("no progress to %d committed events in 60s", at)
			}
		}
		time.Sleep(time.Duration(rng.IntN(30)) * time.Millisecond) // mid-batch
		p.kill()
		kills++
		t.Logf("SIGKILL at %d committed events (target %d)", e.committedTotal(t), at)
	}
	// The final run. A run during which neither group commits anything for
	// 45 s is stopped (its output and the groups' state go to the test log)
	// and restarted, at most twice, as an orchestrator's liveness check
	// would: seen on loaded machines after several kills in a row, with the
	// run's fetches from the test broker timing out again and again. The
	// final state is compared with the reference all the same.
	p := e.startSubprocess(t)
	for restarts := 0; !e.doneOrStalled(t, p, 45*time.Second); restarts++ {
		if restarts == 2 {
			t.Fatalf("final run: no commit in 45s after %d restarts", restarts)
		}
		t.Logf("final run: no commit in 45s; group %s: %s; group %s: %s; its output:\n%s",
			e.cfg.Kafka.IngestGroup, describeGroup(e.kf, e.cfg.Kafka.IngestGroup),
			e.cfg.Kafka.ScoreGroup, describeGroup(e.kf, e.cfg.Kafka.ScoreGroup), p.kill())
		p = e.startSubprocess(t)
	}
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("final processor: exit %v (exited %v)\n%s", err, ok, p.log.String())
	}
	e.checkAgainstReference(t)
	t.Logf("%d kills, final state identical to the reference", kills)
}

// doneOrStalled waits until the ingest group has committed all of the log
// and the score group all of the refresh topic (true), or until a window
// passes in which neither commits anything (false); it fails when p exits.
func (e *faultEnv) doneOrStalled(t *testing.T, p *subprocess, window time.Duration) bool {
	t.Helper()
	progress := func() (int64, bool) {
		n := e.committedTotal(t)
		done := n >= faultEvents
		_, high := e.kf.Offsets(t, e.cfg.Kafka.RefreshTopic)
		c := committedOffsets(e.kf, e.cfg.Kafka.ScoreGroup, e.cfg.Kafka.RefreshTopic)
		for part, h := range high {
			n += max(c[part], 0)
			if c[part] < h {
				done = false
			}
		}
		return n, done
	}
	last, since := int64(-1), time.Now()
	for {
		if err, exited := p.wait(50 * time.Millisecond); exited {
			t.Fatalf("recstream run exited on its own: %v", err)
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
