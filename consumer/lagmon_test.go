package consumer_test

import (
	"context"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/testutil"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/internal/kafkatest"
)

// TestLagMonitor checks the poller against a broker state the test sets up:
// messages with known timestamps, a commit in the middle of one partition,
// no group member.
func TestLagMonitor(t *testing.T) {
	kf := kafkatest.Start(t, 2, "events")
	old := time.Now().Add(-90 * time.Second).Truncate(time.Millisecond)
	var msgs []kafka.Message
	for i := 0; i < 40; i++ {
		msgs = append(msgs, kafka.Message{Key: []byte{byte('a' + i%7)}, Value: []byte("x"), Time: old.Add(time.Duration(i) * time.Second)})
	}
	kf.Produce(t, "events", msgs...)
	_, high := kf.Offsets(t, "events")

	// Commit offset 5 on partition 0 for group g (a simple-consumer commit).
	cl := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 5 * time.Second}
	res, err := cl.OffsetCommit(context.Background(), &kafka.OffsetCommitRequest{
		GroupID: "g", GenerationID: -1,
		Topics: map[string][]kafka.OffsetCommit{"events": {{Partition: 0, Offset: 5}}},
	})
	if err != nil {
		t.Fatal(err)
	}
	for _, ps := range res.Topics["events"] {
		if ps.Error != nil {
			t.Fatal(ps.Error)
		}
	}

	now := time.Now()
	clock := func() time.Time { return now }
	reg := prometheus.NewRegistry()
	m := consumer.NewMetrics(reg)
	mon := consumer.NewLagMonitor(consumer.LagMonitorOptions{
		Kafka:      consumer.Kafka{Brokers: kf.Brokers},
		Watches:    []consumer.LagWatch{{Group: "g", Topic: "events"}},
		Interval:   time.Second,
		StallAfter: 10 * time.Second,
		// The messages are 51 to 90 s old: below the threshold, so that
		// the first poll shows ok and the next one stalled.
		LagThreshold: 2 * time.Minute,
		Metrics:      m,
		Registerer:   reg,
		Now:          clock,
	})
	if err := mon.Check(); err == nil || !strings.Contains(err.Error(), "not polled") {
		t.Errorf("Check before the first poll: %v", err)
	}
	ctx := context.Background()
	mon.Poll(ctx)
	snap := mon.Snapshot()
	if len(snap.Partitions) != 2 {
		t.Fatalf("partitions %+v", snap.Partitions)
	}
	for _, p := range snap.Partitions {
		want := high[p.Partition]
		wantCommitted := int64(-1)
		if p.Partition == 0 {
			want -= 5
			wantCommitted = 5
		}
		if p.Lag != want || p.Committed != wantCommitted || p.High != high[p.Partition] {
			t.Errorf("partition %d: lag %d committed %d high %d, want lag %d committed %d high %d", p.Partition, p.Lag, p.Committed, p.High, want, wantCommitted, high[p.Partition])
		}
		got := testutil.ToFloat64(m.Lag.WithLabelValues("g", "events", itoa(p.Partition)))
		if got != float64(want) {
			t.Errorf("partition %d: lag gauge %v, want %d", p.Partition, got, want)
		}
		// The oldest unconsumed message is at least 90 s - 39 s old and at
		// most 90 s old.
		if p.LagSeconds < 50 || p.LagSeconds > 91 {
			t.Errorf("partition %d: lag seconds %v", p.Partition, p.LagSeconds)
		}
		if p.Status != consumer.StatusOK {
			t.Errorf("partition %d: status %s after one poll", p.Partition, p.Status)
		}
	}
	if got := gauge(t, reg, "recstream_broker_reachable"); got != 1 {
		t.Errorf("broker reachable %v", got)
	}
	// No member: not ready.
	if err := mon.Check(); err == nil || !strings.Contains(err.Error(), "no partitions") {
		t.Errorf("Check without members: %v", err)
	}

	// 11 s later nothing moved: both partitions are stalled.
	now = now.Add(11 * time.Second)
	mon.Poll(ctx)
	for _, p := range mon.Snapshot().Partitions {
		if p.Status != consumer.StatusStalled {
			t.Errorf("partition %d: status %s, want stalled", p.Partition, p.Status)
		}
	}

	// The broker goes away: polls fail and after three intervals the check
	// reports it.
	kf.Close()
	now = now.Add(time.Second)
	pctx, cancel := context.WithTimeout(ctx, 3*time.Second)
	mon.Poll(pctx)
	cancel()
	now = now.Add(3 * time.Second)
	if err := mon.Check(); err == nil || !strings.Contains(err.Error(), "broker") {
		t.Errorf("Check with the broker gone: %v", err)
	}
}

// A partition is lagging by the age of its oldest unconsumed message
// against the threshold, not by a non-zero count: a few fresh messages
// behind is ok, old ones are lagging, and nothing moving is stalled.
func TestLagStatusByTime(t *testing.T) {
	kf := kafkatest.Start(t, 1, "fresh", "stale")
	now := time.Now()
	for topic, age := range map[string]time.Duration{"fresh": 200 * time.Millisecond, "stale": 45 * time.Second} {
		var msgs []kafka.Message
		for i := 0; i < 6; i++ {
			msgs = append(msgs, kafka.Message{Key: []byte("u"), Value: []byte("x"), Time: now.Add(-age)})
		}
		kf.Produce(t, topic, msgs...)
	}
	clock := now
	mon := consumer.NewLagMonitor(consumer.LagMonitorOptions{
		Kafka:        consumer.Kafka{Brokers: kf.Brokers},
		Watches:      []consumer.LagWatch{{Group: "g1", Topic: "fresh"}, {Group: "g2", Topic: "stale"}},
		Interval:     time.Second,
		StallAfter:   30 * time.Second,
		LagThreshold: 10 * time.Second,
		Now:          func() time.Time { return clock },
	})
	status := func() map[string]consumer.PartitionStatus {
		out := map[string]consumer.PartitionStatus{}
		for _, p := range mon.Snapshot().Partitions {
			out[p.Topic] = p
		}
		return out
	}
	mon.Poll(context.Background())
	if err := mon.Broker(); err != nil {
		t.Fatalf("poll: %v", err)
	}
	st := status()
	if p := st["fresh"]; p.Lag != 6 || p.LagSeconds > 5 || p.Status != consumer.StatusOK {
		t.Errorf("6 messages 0.2 s behind: lag %d, %.1f s, status %s; want ok", p.Lag, p.LagSeconds, p.Status)
	}
	if p := st["stale"]; p.Lag != 6 || p.LagSeconds < 40 || p.Status != consumer.StatusLagging {
		t.Errorf("6 messages 45 s behind: lag %d, %.1f s, status %s; want lagging", p.Lag, p.LagSeconds, p.Status)
	}
	clock = clock.Add(31 * time.Second)
	mon.Poll(context.Background())
	for topic, p := range status() {
		if p.Status != consumer.StatusStalled {
			t.Errorf("%s: nothing committed for 31 s with lag: status %s, want stalled", topic, p.Status)
		}
	}
}

func itoa(i int) string { return strconv.Itoa(i) }

func gauge(t *testing.T, reg *prometheus.Registry, name string) float64 {
	t.Helper()
	fams, err := reg.Gather()
	if err != nil {
		t.Fatal(err)
	}
	for _, f := range fams {
		if f.GetName() == name {
			return f.GetMetric()[0].GetGauge().GetValue()
		}
	}
	t.Fatalf("no metric %s", name)
	return 0
}
