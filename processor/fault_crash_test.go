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
	// The final run. A run that commits nothing for 45 s is stopped (its
	// output and the group's state go to the test log) and restarted once,
	// as an orchestrator's liveness check would: seen once on a loaded CI
	// machine after several kills in a row (not reproduced since; the
	// output shows what the group was doing). A second stall fails.
	p := e.startSubprocess(t)
	if !e.progressWhileRunning(t, p, 45*time.Second) {
		t.Logf("final run: no commit in 45s; group %s: %s; its output:\n%s", e.cfg.Kafka.IngestGroup,
			describeGroup(e.kf, e.cfg.Kafka.IngestGroup), p.kill())
		p = e.startSubprocess(t)
	}
	e.waitDoneWhileRunning(t, p, 120*time.Second)
	if err := p.cmd.Process.Signal(syscall.SIGTERM); err != nil {
		t.Fatal(err)
	}
	if err, ok := p.wait(30 * time.Second); !ok || err != nil {
		t.Fatalf("final processor: exit %v (exited %v)\n%s", err, ok, p.log.String())
	}
	e.checkAgainstReference(t)
	t.Logf("%d kills, final state identical to the reference", kills)
}
