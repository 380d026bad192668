package processor_test

import (
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
)

// peakRSS returns VmHWM (peak resident set size) of a process, in bytes.
func peakRSS(t *testing.T, pid int) int64 {
	t.Helper()
	b, err := os.ReadFile("/proc/" + strconv.Itoa(pid) + "/status")
	if err != nil {
		t.Skipf("no /proc: %v", err)
	}
	for _, l := range strings.Split(string(b), "\n") {
		if f := strings.Fields(l); len(f) >= 2 && f[0] == "VmHWM:" {
			kb, _ := strconv.ParseInt(f[1], 10, 64)
			return kb << 10
		}
	}
	t.Fatal("no VmHWM in /proc status")
	return 0
}

// TestFaultBurstMemoryBounded runs `recstream run` at a steady rate, then
// puts a backlog of ten times as many events at once on the topic: the
// processor's peak RSS stays bounded (the reader queue, the batch and the
// writer are bounded by configuration, not by the backlog).
func TestFaultBurstMemoryBounded(t *testing.T) {
	kf := kafkatest.Start(t, faultPartitions, faultTopics()...)
	rs := redistest.Start(t)
	e := &faultEnv{kf: kf, rs: rs, cfg: faultConfig(kf.Brokers, rs.Addr)}
	gen := loadgen.New(loadgen.Options{Users: 2000, Items: 1000, Seed: 9, Start: faultLogStart, Step: 10 * time.Millisecond})
	next := func(n int) []kafka.Message {
		out := make([]kafka.Message, n)
		for i := range out {
			ev := gen.Next()
			b, _ := event.Encode(ev)
			out[i] = kafka.Message{Key: []byte(ev.UserID), Value: b}
		}
		return out
	}
	p := e.startSubprocess(t)
	const steady, perSec = 3 * time.Second, 1000
	start := time.Now()
	for time.Since(start) < steady {
		produceOrdered(t, kf, e.cfg.Kafka.EventsTopic, faultPartitions, next(perSec/10))
		time.Sleep(100 * time.Millisecond)
	}
	waitFor(t, 30*time.Second, "the steady load consumed", func() bool {
		_, high := kf.Offsets(t, e.cfg.Kafka.EventsTopic)
		c := committedOffsets(kf, e.cfg.Kafka.IngestGroup, e.cfg.Kafka.EventsTopic)
		for q, h := range high {
			if c[q] < h {
				return false
			}
		}
		return true
	})
	normal := peakRSS(t, p.cmd.Process.Pid)

	// The burst: 10x the steady rate for the same time, all at once
	// (30,000 events), then 8 s of processing the backlog.
	produceOrdered(t, kf, e.cfg.Kafka.EventsTopic, faultPartitions, next(10*perSec*int(steady/time.Second)))
	before := e.committedTotal(t)
	time.Sleep(8 * time.Second)
	burst := peakRSS(t, p.cmd.Process.Pid)
	done := e.committedTotal(t) - before
	t.Logf("peak RSS: %.1f MiB after the steady load (%d events/s), %.1f MiB during the burst (%d events backlog, %d committed in 8 s)",
		float64(normal)/(1<<20), perSec, float64(burst)/(1<<20), 10*perSec*int(steady/time.Second), done)
	if done == 0 {
		t.Fatal("no progress on the burst")
	}
	// The queue holds 4×batch_max_events messages, one batch is in flight and
	// kafka-go fetches at most 16 MiB per request: a bounded processor stays
	// well under normal + 128 MiB whatever the backlog.
	if burst > normal+128<<20 {
		t.Errorf("peak RSS grew from %d to %d bytes under the burst", normal, burst)
	}
}
