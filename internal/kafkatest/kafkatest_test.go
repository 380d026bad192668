package kafkatest_test

import (
	"context"
	"fmt"
	"strings"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/internal/kafkatest"
)

const partitions = 3

func messages(n int) []kafka.Message {
	msgs := make([]kafka.Message, n)
	for i := range msgs {
		msgs[i] = kafka.Message{
			Key:     []byte(fmt.Sprintf("user%d", i%7)),
			Value:   []byte(fmt.Sprintf("v%d", i)),
			Headers: []kafka.Header{{Key: "seq", Value: []byte(fmt.Sprint(i))}},
		}
	}
	return msgs
}

func TestProduceReadAll(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, partitions, "events", "empty")
	if len(c.Brokers) != 1 || !strings.HasPrefix(c.Brokers[0], "127.0.0.1:") {
		t.Fatalf("brokers %v", c.Brokers)
	}
	if ps := c.Partitions(t, "events"); len(ps) != partitions {
		t.Fatalf("partitions %v", ps)
	}
	if got := c.ReadAll(t, "empty", 5*time.Second); len(got) != 0 {
		t.Fatalf("empty topic: %d messages", len(got))
	}
	msgs := messages(50)
	c.Produce(t, "events", msgs[:20]...)
	c.Produce(t, "events", msgs[20:]...)

	got := c.ReadAll(t, "events", 10*time.Second)
	if len(got) != len(msgs) {
		t.Fatalf("ReadAll: %d messages, want %d", len(got), len(msgs))
	}
	// Each key in the partition kafka.Hash picks; partitions in order,
	// offsets consecutive, produce order kept inside a partition.
	bal := &kafka.Hash{}
	next := map[int]int64{}
	lastSeq := map[int]int{}
	prevPart := -1
	for _, m := range got {
		if want := bal.Balance(m, 0, 1, 2); m.Partition != want {
			t.Errorf("key %s in partition %d, kafka.Hash says %d", m.Key, m.Partition, want)
		}
		if m.Partition < prevPart {
			t.Errorf("partition %d after %d", m.Partition, prevPart)
		}
		prevPart = m.Partition
		if m.Offset != next[m.Partition] {
			t.Errorf("partition %d: offset %d, want %d", m.Partition, m.Offset, next[m.Partition])
		}
		next[m.Partition] = m.Offset + 1
		var seq int
		fmt.Sscan(string(m.Headers[0].Value), &seq)
		if s, ok := lastSeq[m.Partition]; ok && seq <= s {
			t.Errorf("partition %d: seq %d after %d", m.Partition, seq, s)
		}
		lastSeq[m.Partition] = seq
		if string(m.Value) != fmt.Sprintf("v%d", seq) || m.Topic != "events" {
			t.Errorf("message %+v", m)
		}
	}
	first, high := c.Offsets(t, "events")
	for p := range partitions {
		if first[p] != 0 || high[p] != next[p] {
			t.Errorf("partition %d: offsets [%d,%d), want [0,%d)", p, first[p], high[p], next[p])
		}
	}
}

func groupReader(c *kafkatest.Cluster, group string) *kafka.Reader {
	return kafka.NewReader(kafka.ReaderConfig{
		Brokers:           c.Brokers,
		GroupID:           group,
		Topic:             "events",
		CommitInterval:    0, // synchronous commits
		MaxWait:           50 * time.Millisecond,
		SessionTimeout:    time.Second, // below kfake's default minimum of 6 s
		HeartbeatInterval: 200 * time.Millisecond,
		RebalanceTimeout:  2 * time.Second,
		StartOffset:       kafka.FirstOffset,
	})
}

// fetch reads n messages with FetchMessage, committing each synchronously.
func fetch(t *testing.T, r *kafka.Reader, n int, seen map[string]int) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	for range n {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("FetchMessage after %d: %v", len(seen), err)
		}
		seen[string(m.Value)]++
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatalf("CommitMessages: %v", err)
		}
	}
}

func TestGroupCommitResume(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, partitions, "events")
	msgs := messages(60)
	c.Produce(t, "events", msgs...)

	seen := map[string]int{}
	r1 := groupReader(c, "g")
	fetch(t, r1, 25, seen)
	if err := r1.Close(); err != nil {
		t.Fatal(err)
	}
	committed := c.Committed(t, "g", "events")
	var sum int64
	for _, o := range committed {
		sum += o
	}
	if sum != 25 {
		t.Fatalf("committed %v: %d messages, want 25", committed, sum)
	}

	// A new reader in the same group resumes after the commits.
	r2 := groupReader(c, "g")
	defer r2.Close()
	fetch(t, r2, 35, seen)
	for i := range msgs {
		if n := seen[fmt.Sprintf("v%d", i)]; n != 1 {
			t.Errorf("v%d seen %d times", i, n)
		}
	}
	// Nothing more: no duplicates waiting.
	ctx, cancel := context.WithTimeout(context.Background(), 500*time.Millisecond)
	defer cancel()
	if m, err := r2.FetchMessage(ctx); err == nil {
		t.Fatalf("extra message %s at %d/%d", m.Value, m.Partition, m.Offset)
	}
	// New messages reach the live member.
	c.Produce(t, "events", kafka.Message{Key: []byte("late"), Value: []byte("late")})
	fetch(t, r2, 1, seen)
	if seen["late"] != 1 {
		t.Fatal("late message not consumed")
	}
	_, high := c.Offsets(t, "events")
	got := c.Committed(t, "g", "events")
	for p, h := range high {
		if got[p] != h {
			t.Errorf("partition %d: committed %d, high watermark %d", p, got[p], h)
		}
	}
}

func TestReadAllStopsAtWatermark(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, 1, "events")
	c.Produce(t, "events", messages(3)...)
	// ReadAll returns at the high watermark instead of waiting for more.
	start := time.Now()
	if got := c.ReadAll(t, "events", 10*time.Second); len(got) != 3 {
		t.Fatalf("%d messages", len(got))
	}
	if d := time.Since(start); d > 5*time.Second {
		t.Fatalf("ReadAll took %s", d)
	}
}

// TestAfterLeaderMove: right after every partition's leader moved to an added
// broker, Offsets, Produce and ReadAll reach the new leader (with
// kafka-go's shared default transport they failed with
// NOT_LEADER_FOR_PARTITION for up to 6 s, until its metadata refresh).
func TestAfterLeaderMove(t *testing.T) {
	t.Parallel()
	c := kafkatest.Start(t, partitions, "events")
	msgs := messages(60)
	c.Produce(t, "events", msgs[:30]...)
	if got := c.ReadAll(t, "events", 10*time.Second); len(got) != 30 {
		t.Fatalf("before the move: %d messages, want 30", len(got))
	}
	node, _, err := c.AddNode(-1, 0)
	if err != nil {
		t.Fatal(err)
	}
	for p := range partitions {
		if err := c.MoveTopicPartition("events", int32(p), node); err != nil {
			t.Fatal(err)
		}
	}
	_, high := c.Offsets(t, "events")
	var n int64
	for _, h := range high {
		n += h
	}
	if n != 30 {
		t.Fatalf("after the move: high watermarks %v, want 30 messages", high)
	}
	c.Produce(t, "events", msgs[30:]...)
	if got := c.ReadAll(t, "events", 10*time.Second); len(got) != len(msgs) {
		t.Fatalf("after the move: %d messages, want %d", len(got), len(msgs))
	}
}
