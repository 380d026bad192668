package consumer

import (
	"context"
	"encoding/json"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"reflect"
	"slices"
	"strconv"
	"time"

	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/internal/logx"
)

// Kafka holds what every reader and writer of recstream shares.
type Kafka struct {
	Brokers          []string
	ClientID         string
	SessionTimeout   time.Duration
	RebalanceTimeout time.Duration
	MaxWait          time.Duration
	Dialer           *kafka.Dialer    // nil: plain TCP
	Transport        *kafka.Transport // nil: plain TCP
	// Logger receives kafka-go's own error messages (failed joins,
	// heartbeats, commits and fetches) at warn level; nil discards them.
	Logger *slog.Logger
	// CloseTimeout bounds how long a consumer waits, when it stops, for
	// its reader to close (leave the group, end its fetches); 0 waits as
	// long as closing takes. See closeReader.
	CloseTimeout time.Duration
}

// closeReader closes r within k.CloseTimeout. kafka-go's Close waits for
// the reader's fetch goroutines, and a fetch blocked in a broker read ends
// only at its read deadline (up to ReadBatchTimeout, 10 s): a cancelled
// context does not interrupt it. A Close still running after CloseTimeout
// is left to finish in the background and logged; nothing is lost, since
// every commit happened before, and the group expires the member after its
// session timeout if the leave request never went out.
func (k Kafka) closeReader(r *kafka.Reader, attrs ...any) {
	if k.CloseTimeout <= 0 {
		r.Close()
		return
	}
	done := make(chan struct{})
	go func() {
		defer close(done)
		r.Close()
	}()
	t := time.NewTimer(k.CloseTimeout)
	defer t.Stop()
	select {
	case <-done:
	case <-t.C:
		if k.Logger != nil {
			k.Logger.Warn("closing the Kafka reader did not finish in time; left to finish in the background",
				append(attrs, "close_timeout", k.CloseTimeout)...)
		}
	}
}

// errorLogger adapts Logger, with attrs, to kafka-go's ErrorLogger.
// kafka-go passes printf templates with their arguments, which are
// formatted here; the template goes along (logx.Template), so that a
// rate-limited Logger counts one complaint about every partition as one
// message. Every reader and writer of recstream is built with it; nil when
// Logger is nil.
func (k Kafka) errorLogger(attrs ...any) kafka.Logger {
	if k.Logger == nil {
		return nil
	}
	l := k.Logger.With(attrs...)
	return kafka.LoggerFunc(func(format string, args ...any) {
		l.Warn("kafka-go: "+fmt.Sprintf(format, args...), logx.Template(format))
	})
}

// readerConfig is the one reader configuration of recstream's consumers:
// synchronous commits only, read from the first offset when the group has
// none, kafka-go's errors logged.
func (k Kafka) readerConfig(topic, group string, queue int) kafka.ReaderConfig {
	st := k.SessionTimeout
	if st <= 0 {
		st = 10 * time.Second
	}
	rt := k.RebalanceTimeout
	if rt <= 0 {
		rt = 10 * time.Second
	}
	mw := k.MaxWait
	if mw <= 0 {
		mw = 200 * time.Millisecond
	}
	return kafka.ReaderConfig{
		Brokers:           k.Brokers,
		GroupID:           group,
		Topic:             topic,
		Dialer:            k.Dialer,
		MinBytes:          1,
		MaxBytes:          16 << 20,
		MaxWait:           mw,
		ReadBatchTimeout:  10 * time.Second, // per message read: up to MaxBytes over a slow link
		QueueCapacity:     queue,
		CommitInterval:    0, // synchronous commits only
		StartOffset:       kafka.FirstOffset,
		SessionTimeout:    st,
		RebalanceTimeout:  rt,
		HeartbeatInterval: st / 4,
		JoinGroupBackoff:  200 * time.Millisecond,
		ReadBackoffMin:    10 * time.Millisecond,
		ReadBackoffMax:    200 * time.Millisecond,
		ErrorLogger:       k.errorLogger("kafka_group", group),
	}
}

// reader reads topic in consumer group group.
func (k Kafka) reader(topic, group string, queue int) *kafka.Reader {
	return kafka.NewReader(k.readerConfig(topic, group, queue))
}

// subscribedFormat is the message kafka-go's Reader logs, at info level,
// each time its consumer group gives it partitions (a new generation),
// with the map of its partitions (topic and partition) to their starting
// offsets as the argument.
const subscribedFormat = "subscribed to topics and partitions: %+v"

// assignmentLogger returns an info logger for a group reader of topic
// that calls f with the reader's partitions of topic, ascending, each time
// the group assigns it partitions (each generation; none: an empty
// slice). kafka-go's Reader has no rebalance callback; this message is
// the one place it tells its assignment. f runs in the reader's group goroutine, after the
// previous generation's fetches stopped; batches already fetched may
// still be applied after it. Any other message is ignored, so is this one
// when its argument does not have the expected shape (f is then never
// called; TestIngestAssignedPartitions checks it against kafka-go).
func assignmentLogger(topic string, f func([]int)) kafka.Logger {
	return kafka.LoggerFunc(func(format string, args ...any) {
		if format != subscribedFormat || len(args) != 1 {
			return
		}
		if ps, ok := subscribedPartitions(topic, args[0]); ok {
			f(ps)
		}
	})
}

// subscribedPartitions returns the partitions of topic among the keys of
// kafka-go's map of topic-partitions (structs with fields topic and
// partition) to offsets.
func subscribedPartitions(topic string, m any) ([]int, bool) {
	v := reflect.ValueOf(m)
	if v.Kind() != reflect.Map || v.Type().Key().Kind() != reflect.Struct {
		return nil, false
	}
	kt := v.Type().Key()
	tf, ok1 := kt.FieldByName("topic")
	pf, ok2 := kt.FieldByName("partition")
	if !ok1 || !ok2 || tf.Type.Kind() != reflect.String {
		return nil, false
	}
	switch pf.Type.Kind() {
	case reflect.Int, reflect.Int32, reflect.Int64:
	default:
		return nil, false
	}
	ps := []int{}
	for _, k := range v.MapKeys() {
		if k.FieldByIndex(tf.Index).String() == topic {
			ps = append(ps, int(k.FieldByIndex(pf.Index).Int()))
		}
	}
	slices.Sort(ps)
	return ps, true
}

// partitionReader reads one partition of topic from its first offset,
// without a consumer group (nothing is committed).
func (k Kafka) partitionReader(topic string, partition, queue int) *kafka.Reader {
	c := k.readerConfig(topic, "", queue)
	c.Partition = partition
	// kafka-go's own lag reader (readers without a group only) is not
	// used: recstream measures lag itself (lagmon.go).
	c.ReadLagInterval = -1
	c.ErrorLogger = k.errorLogger("kafka_topic", topic, "kafka_partition", partition)
	return kafka.NewReader(c)
}

// writerBatch is the most messages a writer puts in one produce request
// for one partition; a write with more for a partition goes out as several
// requests. kafka-go allocates a slice of BatchSize messages (152 bytes
// each) for every partition batch it opens, however few messages the batch
// gets, so a large BatchSize costs every small write: 10,000 allocated and
// zeroed 1.5 MB per partition per write, which made the processor's
// refresh requests (docs/benchmarks.md, 21) and the rate-limited producers
// of the demo and the benchmark's freshness phase (27) allocate hundreds of
// MB/s. Large writes lose nothing measurable with 256.
const writerBatch = 256

// NewWriter returns a synchronous, key-hashing writer: the one writer
// configuration of the processor (refresh requests, dead letters, control
// answers, catalog writes) and of the producers (recstream produce, the
// demo, the benchmark).
func (k Kafka) NewWriter() *kafka.Writer {
	w := &kafka.Writer{
		Addr:         kafka.TCP(k.Brokers...),
		Balancer:     &kafka.Hash{},
		RequiredAcks: kafka.RequireAll,
		BatchTimeout: 2 * time.Millisecond,
		BatchSize:    writerBatch,
		BatchBytes:   64 << 20,
		MaxAttempts:  3,
		ErrorLogger:  k.errorLogger("kafka_client", "writer"),
	}
	if k.Transport != nil {
		w.Transport = k.Transport
	} else {
		// Not kafka-go's shared default transport: that one refreshes
		// its cached partition leaders only every 6 s, so after a
		// leader move every write failed (and the ingest batch was
		// retried) until then (kafka-go issues #1221, #1413).
		w.Transport = &kafka.Transport{ClientID: k.ClientID, MetadataTTL: WriterMetadataTTL}
	}
	return w
}

// WriterMetadataTTL is how long writers trust their cached partition
// leaders; a write after a leader move fails for at most about this long.
const WriterMetadataTTL = time.Second

// dial connects to the first broker that answers, with k.Dialer (a 10 s
// timeout when nil), and returns the dialer used.
func (k Kafka) dial(ctx context.Context) (*kafka.Conn, *kafka.Dialer, error) {
	d := k.Dialer
	if d == nil {
		d = &kafka.Dialer{Timeout: 10 * time.Second}
	}
	var conn *kafka.Conn
	var err error
	for _, b := range k.Brokers {
		if conn, err = d.DialContext(ctx, "tcp", b); err == nil {
			break
		}
	}
	if err != nil {
		return nil, nil, fmt.Errorf("connecting to kafka: %w", err)
	}
	return conn, d, nil
}

// EnsureTopics creates the topics that do not exist yet.
func (k Kafka) EnsureTopics(ctx context.Context, partitions int, topics ...string) error {
	conn, d, err := k.dial(ctx)
	if err != nil {
		return err
	}
	defer conn.Close()
	ctrl, err := conn.Controller()
	if err != nil {
		return fmt.Errorf("finding kafka controller: %w", err)
	}
	cc, err := d.DialContext(ctx, "tcp", net.JoinHostPort(ctrl.Host, strconv.Itoa(ctrl.Port)))
	if err != nil {
		return fmt.Errorf("connecting to kafka controller: %w", err)
	}
	defer cc.Close()
	cfgs := make([]kafka.TopicConfig, len(topics))
	for i, t := range topics {
		cfgs[i] = kafka.TopicConfig{Topic: t, NumPartitions: partitions, ReplicationFactor: -1}
	}
	if err := cc.CreateTopics(cfgs...); err != nil && !errors.Is(err, kafka.TopicAlreadyExists) {
		return fmt.Errorf("creating topics: %w", err)
	}
	return nil
}

// PartitionCount returns the number of partitions of topic.
func (k Kafka) PartitionCount(ctx context.Context, topic string) (int, error) {
	conn, _, err := k.dial(ctx)
	if err != nil {
		return 0, err
	}
	defer conn.Close()
	ps, err := conn.ReadPartitions(topic)
	if err != nil {
		return 0, fmt.Errorf("reading the partitions of %s: %w", topic, err)
	}
	if len(ps) == 0 {
		return 0, fmt.Errorf("topic %s has no partitions", topic)
	}
	return len(ps), nil
}

// RefreshRequest asks the scorer to rescore a user. TS is the newest event
// time (unix ms) that the new list must reflect, for freshness measurement.
type RefreshRequest struct {
	User string `json:"user_id"`
	TS   int64  `json:"ts"`
}

// EncodeRefresh encodes a refresh request.
func EncodeRefresh(r RefreshRequest) []byte {
	b, _ := json.Marshal(r)
	return b
}

// DecodeRefresh decodes a refresh request.
func DecodeRefresh(b []byte) (RefreshRequest, error) {
	var r RefreshRequest
	if err := json.Unmarshal(b, &r); err != nil {
		return r, fmt.Errorf("decoding refresh request: %w", err)
	}
	if r.User == "" {
		return r, errors.New("decoding refresh request: no user_id")
	}
	return r, nil
}
