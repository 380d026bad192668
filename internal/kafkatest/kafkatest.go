package kafkatest

import (
	"context"
	"errors"
	"fmt"
	"sort"
	"sync"
	"testing"
	"time"

	"github.com/segmentio/kafka-go"
	"github.com/twmb/franz-go/pkg/kfake"
)

// MinSessionTimeout is the smallest group session timeout the cluster
// accepts (kfake's default is 6 s; kafka's error 26 below it).
const MinSessionTimeout = 100 * time.Millisecond

// Cluster is a kfake cluster owned by one test.
type Cluster struct {
	*kfake.Cluster
	Brokers []string // host:port of each broker (one)

	mu       sync.Mutex
	writer   *kafka.Writer
	writerTr *kafka.Transport
}

// Start starts a one-broker cluster on a free 127.0.0.1 port with each topic
// created with the given number of partitions. Extra kfake options can be
// passed with StartOpts. The cluster is closed at cleanup.
func Start(t testing.TB, partitions int, topics ...string) *Cluster {
	t.Helper()
	return StartOpts(t, partitions, topics)
}

// StartOpts is Start with additional kfake options, applied after the
// defaults.
func StartOpts(t testing.TB, partitions int, topics []string, opts ...kfake.Opt) *Cluster {
	t.Helper()
	if partitions < 1 {
		t.Fatalf("kafkatest: %d partitions", partitions)
	}
	all := []kfake.Opt{
		kfake.NumBrokers(1),
		kfake.GroupMinSessionTimeout(MinSessionTimeout),
	}
	if len(topics) > 0 {
		all = append(all, kfake.SeedTopics(int32(partitions), topics...))
	}
	all = append(all, opts...)
	kc, err := kfake.NewCluster(all...)
	if err != nil {
		t.Fatalf("kafkatest: starting kfake: %v", err)
	}
	c := &Cluster{Cluster: kc, Brokers: kc.ListenAddrs()}
	t.Cleanup(c.close)
	return c
}

func (c *Cluster) close() {
	c.mu.Lock()
	w, tr := c.writer, c.writerTr
	c.writer, c.writerTr = nil, nil
	c.mu.Unlock()
	if w != nil {
		_ = w.Close()
		tr.CloseIdleConnections()
	}
	c.Cluster.Close()
}

// client returns a client on a transport of its own, and a func that closes
// the transport's connections. A kafka-go transport caches the cluster
// metadata and refreshes it on a timer (every 0-6 s by default), so a shared
// one (kafka.DefaultTransport) keeps sending a partition's requests to its old
// leader for seconds after a leader move (AddNode, MoveTopicPartition), and
// they fail with NOT_LEADER_FOR_PARTITION; a new transport asks for metadata
// first.
func (c *Cluster) client() (*kafka.Client, func()) {
	tr := &kafka.Transport{}
	return &kafka.Client{Addr: kafka.TCP(c.Brokers...), Timeout: 10 * time.Second, Transport: tr}, tr.CloseIdleConnections
}

func (c *Cluster) getWriter() *kafka.Writer {
	c.mu.Lock()
	defer c.mu.Unlock()
	if c.writer == nil {
		// The writer's transport refreshes metadata often, so that its
		// retries reach a partition's new leader after a leader move
		// (see client).
		c.writerTr = &kafka.Transport{MetadataTTL: 250 * time.Millisecond}
		c.writer = &kafka.Writer{
			Addr:         kafka.TCP(c.Brokers...),
			Balancer:     &kafka.Hash{},
			RequiredAcks: kafka.RequireAll,
			BatchTimeout: time.Millisecond,
			BatchSize:    1000,
			WriteTimeout: 10 * time.Second,
			ReadTimeout:  10 * time.Second,
			Transport:    c.writerTr,
		}
	}
	return c.writer
}

// Produce writes msgs to topic and returns when the broker has acknowledged
// all of them (acks=all). The partition is chosen by kafka.Hash on the key
// (FNV-1a modulo the partition count; round robin for a nil key), so one key
// always lands in one partition. A Topic or Partition set on a message is
// ignored. Call it from the test goroutine (it may t.Fatal).
func (c *Cluster) Produce(t testing.TB, topic string, msgs ...kafka.Message) {
	t.Helper()
	if len(msgs) == 0 {
		return
	}
	out := make([]kafka.Message, len(msgs))
	for i, m := range msgs {
		m.Topic = topic
		m.Partition = 0
		m.Offset = 0
		out[i] = m
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	if err := c.getWriter().WriteMessages(ctx, out...); err != nil {
		t.Fatalf("kafkatest: producing %d messages to %s: %v", len(msgs), topic, err)
	}
}

// Partitions returns the partition ids of topic, ascending.
func (c *Cluster) Partitions(t testing.TB, topic string) []int {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := c.partitions(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return ps
}

func (c *Cluster) partitions(ctx context.Context, topic string) ([]int, error) {
	cl, done := c.client()
	defer done()
	md, err := cl.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{topic}})
	if err != nil {
		return nil, fmt.Errorf("metadata of %s: %w", topic, err)
	}
	for _, tp := range md.Topics {
		if tp.Name != topic {
			continue
		}
		if tp.Error != nil {
			return nil, fmt.Errorf("metadata of %s: %w", topic, tp.Error)
		}
		ps := make([]int, 0, len(tp.Partitions))
		for _, p := range tp.Partitions {
			ps = append(ps, p.ID)
		}
		sort.Ints(ps)
		return ps, nil
	}
	return nil, fmt.Errorf("metadata of %s: topic missing", topic)
}

// Offsets returns the first offset and the high watermark (the offset the
// next message will get) of each partition of topic.
func (c *Cluster) Offsets(t testing.TB, topic string) (first, high map[int]int64) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	first, high, err := c.offsets(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	return first, high
}

func (c *Cluster) offsets(ctx context.Context, topic string) (first, high map[int]int64, err error) {
	ps, err := c.partitions(ctx, topic)
	if err != nil {
		return nil, nil, err
	}
	var reqs []kafka.OffsetRequest
	for _, p := range ps {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	cl, done := c.client()
	defer done()
	res, err := cl.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: reqs}})
	if err != nil {
		return nil, nil, fmt.Errorf("list offsets of %s: %w", topic, err)
	}
	first, high = map[int]int64{}, map[int]int64{}
	for _, po := range res.Topics[topic] {
		if po.Error != nil {
			return nil, nil, fmt.Errorf("list offsets of %s/%d: %w", topic, po.Partition, po.Error)
		}
		first[po.Partition] = po.FirstOffset
		high[po.Partition] = po.LastOffset
	}
	for _, p := range ps {
		if _, ok := high[p]; !ok {
			return nil, nil, fmt.Errorf("list offsets of %s: partition %d missing", topic, p)
		}
	}
	return first, high, nil
}

// Committed returns the offsets group has committed on topic (the offset of
// the next message to consume), by partition; partitions without a commit
// are absent.
func (c *Cluster) Committed(t testing.TB, group, topic string) map[int]int64 {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps, err := c.partitions(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: %v", err)
	}
	cl, done := c.client()
	defer done()
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		t.Fatalf("kafkatest: committed offsets of %s on %s: %v", group, topic, err)
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			t.Fatalf("kafkatest: committed offset of %s on %s/%d: %v", group, topic, p.Partition, p.Error)
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// ReadAll reads every partition of topic from its first offset up to the high
// watermark found at the call, without a consumer group, and returns the
// messages ordered by partition, then offset. It fails the test if that takes
// longer than timeout.
func (c *Cluster) ReadAll(t testing.TB, topic string, timeout time.Duration) []kafka.Message {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	msgs, err := c.readAll(ctx, topic)
	if err != nil {
		t.Fatalf("kafkatest: reading %s: %v", topic, err)
	}
	return msgs
}

func (c *Cluster) readAll(ctx context.Context, topic string) ([]kafka.Message, error) {
	first, high, err := c.offsets(ctx, topic)
	if err != nil {
		return nil, err
	}
	ps := make([]int, 0, len(high))
	for p := range high {
		ps = append(ps, p)
	}
	sort.Ints(ps)
	var out []kafka.Message
	for _, p := range ps {
		if high[p] <= first[p] {
			continue
		}
		msgs, err := c.readPartition(ctx, topic, p, first[p], high[p])
		if err != nil {
			return nil, err
		}
		out = append(out, msgs...)
	}
	return out, nil
}

func (c *Cluster) readPartition(ctx context.Context, topic string, partition int, from, to int64) ([]kafka.Message, error) {
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers:   c.Brokers,
		Topic:     topic,
		Partition: partition,
		MinBytes:  1,
		MaxBytes:  16 << 20,
		MaxWait:   50 * time.Millisecond,
		Dialer:    &kafka.Dialer{Timeout: 5 * time.Second, DualStack: true},
	})
	defer r.Close()
	if err := r.SetOffset(from); err != nil {
		return nil, err
	}
	var out []kafka.Message
	for {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			if errors.Is(err, context.DeadlineExceeded) {
				err = fmt.Errorf("partition %d: read %d of offsets [%d,%d): %w", partition, len(out), from, to, err)
			}
			return nil, err
		}
		if m.Offset >= to {
			break
		}
		out = append(out, m)
		if m.Offset >= to-1 {
			break
		}
	}
	return out, nil
}

// WaitMembers waits until group is stable with n members that each hold at
// least one partition of topic, and returns how many partitions each holds.
// Tests that check how a group shares work call it before producing, so
// that the outcome does not depend on how fast the members joined.
func (c *Cluster) WaitMembers(t testing.TB, group, topic string, n int, timeout time.Duration) []int {
	t.Helper()
	deadline := time.Now().Add(timeout)
	last := "no answer"
	for {
		ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
		cl, done := c.client()
		res, err := cl.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
		done()
		cancel()
		if err != nil {
			last = err.Error()
		} else if len(res.Groups) == 1 {
			g := res.Groups[0]
			var held []int
			for _, m := range g.Members {
				k := 0
				for _, tp := range m.MemberAssignments.Topics {
					if tp.Topic == topic {
						k += len(tp.Partitions)
					}
				}
				if k > 0 {
					held = append(held, k)
				}
			}
			if g.Error == nil && g.GroupState == "Stable" && len(g.Members) == n && len(held) == n {
				sort.Ints(held)
				return held
			}
			last = fmt.Sprintf("state %q, %d members, %d holding partitions of %s, err %v", g.GroupState, len(g.Members), len(held), topic, g.Error)
		}
		if time.Now().After(deadline) {
			t.Fatalf("kafkatest: group %s not stable with %d members after %s: %s", group, n, timeout, last)
		}
		time.Sleep(20 * time.Millisecond)
	}
}
