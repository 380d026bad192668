package consumer

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"net"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/segmentio/kafka-go"
)

// LagWatch names one consumer group and the topic it consumes.
type LagWatch struct {
	Group string
	Topic string
}

// LagMonitorOptions configures a LagMonitor.
type LagMonitorOptions struct {
	Kafka    Kafka
	Watches  []LagWatch
	Interval time.Duration // between polls (admin.lag_interval)
	// StallAfter is how long a partition may keep a positive lag without its
	// committed offset moving before it is reported stalled; 0:
	// max(3 intervals, 30 s).
	StallAfter time.Duration
	// LagThreshold is the age of a partition's oldest unconsumed message
	// above which it is reported lagging (admin.lag_threshold).
	LagThreshold time.Duration
	Metrics      *Metrics              // lag gauges and rebalances are written here
	Registerer   prometheus.Registerer // the monitor's own metrics; nil: not registered
	Logger       *slog.Logger
	Now          func() time.Time
}

// LagMonitor polls the broker, as kminion or kafka-lag-exporter do from
// outside, for each watched group: the high watermark and the committed
// offset of every partition (lag in messages), the timestamp of the oldest
// unconsumed message (lag in seconds), and the group's members and
// assignment. Unlike the lag measured when a batch commits, these values
// stay current while a consumer is stuck or gone. Its last successful poll
// is also the readiness check's broker reachability, so /readyz never
// queries the broker itself.
type LagMonitor struct {
	opt    LagMonitorOptions
	client *kafka.Client

	committedGauge *prometheus.GaugeVec
	highGauge      *prometheus.GaugeVec
	membersGauge   *prometheus.GaugeVec
	assignedGauge  *prometheus.GaugeVec
	polls          *prometheus.CounterVec
	reachable      prometheus.Gauge

	mu      sync.Mutex
	snap    LagSnapshot
	prev    map[partKey]PartitionStatus
	moved   map[partKey]time.Time // last time the committed offset moved or lag was 0
	assigns map[string]string     // group -> assignment signature
	lastOK  time.Time
	lastErr error
	polled  bool
}

type partKey struct {
	group, topic string
	partition    int
}

// PartitionStatus is one partition of a watched group as last polled.
type PartitionStatus struct {
	Group       string  `json:"group"`
	Topic       string  `json:"topic"`
	Partition   int     `json:"partition"`
	High        int64   `json:"high_watermark"`
	Committed   int64   `json:"committed"` // -1: nothing committed yet
	Lag         int64   `json:"lag_messages"`
	LagSeconds  float64 `json:"lag_seconds"`
	ConsumeRate float64 `json:"consume_rate"`    // committed offsets per second since the previous poll
	ProduceRate float64 `json:"produce_rate"`    // high watermark per second since the previous poll
	Status      string  `json:"status"`          // ok, lagging (oldest unconsumed message older than the threshold), stalled (lag > 0, offset not moving)
	Owner       string  `json:"owner,omitempty"` // host of the member the partition is assigned to
}

// GroupStatus is one watched group as last polled.
type GroupStatus struct {
	Group      string `json:"group"`
	Topic      string `json:"topic"`
	State      string `json:"state"`
	Members    int    `json:"members"`
	Assigned   int    `json:"assigned_partitions"`
	Partitions int    `json:"partitions"`
}

// LagSnapshot is the result of the last poll.
type LagSnapshot struct {
	At         time.Time         `json:"at"`
	Groups     []GroupStatus     `json:"groups"`
	Partitions []PartitionStatus `json:"partitions"`
}

// Partition statuses, after Burrow's evaluation rules.
const (
	StatusOK      = "ok"
	StatusLagging = "lagging"
	StatusStalled = "stalled"
)

// NewLagMonitor returns a monitor; Run polls. It panics when Interval or
// LagThreshold is not positive.
func NewLagMonitor(opt LagMonitorOptions) *LagMonitor {
	if err := positive("lag monitor", "Interval", opt.Interval, "LagThreshold", opt.LagThreshold); err != nil {
		panic(err)
	}
	if opt.StallAfter <= 0 {
		opt.StallAfter = max(3*opt.Interval, 30*time.Second)
	}
	if opt.Metrics == nil {
		opt.Metrics = NewMetrics(nil)
	}
	if opt.Logger == nil {
		opt.Logger = slog.New(slog.DiscardHandler)
	}
	if opt.Now == nil {
		opt.Now = time.Now
	}
	c := &kafka.Client{Addr: kafka.TCP(opt.Kafka.Brokers...), Timeout: max(opt.Interval, 5*time.Second)}
	if opt.Kafka.Transport != nil {
		c.Transport = opt.Kafka.Transport
	}
	m := &LagMonitor{
		opt:    opt,
		client: c,
		committedGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_consumer_committed_offset", Help: "Committed offset (next message to consume) per partition, polled from the broker.",
		}, []string{"group", "topic", "partition"}),
		highGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_partition_high_watermark", Help: "High watermark (offset of the next message produced) per partition, polled from the broker.",
		}, []string{"topic", "partition"}),
		membersGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_consumer_group_members", Help: "Members of the consumer group, polled from the broker.",
		}, []string{"group"}),
		assignedGauge: prometheus.NewGaugeVec(prometheus.GaugeOpts{
			Name: "recstream_consumer_group_assigned_partitions", Help: "Partitions of the consumed topic assigned to some member of the group, polled from the broker.",
		}, []string{"group", "topic"}),
		polls: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_lag_polls_total", Help: "Lag polls of the broker, by result.",
		}, []string{"result"}),
		reachable: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_broker_reachable", Help: "1 when the last lag poll of the broker succeeded.",
		}),
		prev:    make(map[partKey]PartitionStatus),
		moved:   make(map[partKey]time.Time),
		assigns: make(map[string]string),
	}
	m.polls.WithLabelValues("ok")
	m.polls.WithLabelValues("error")
	if opt.Registerer != nil {
		opt.Registerer.MustRegister(m.committedGauge, m.highGauge, m.membersGauge, m.assignedGauge, m.polls, m.reachable)
	}
	return m
}

// Run polls at once and then every interval until ctx ends.
func (m *LagMonitor) Run(ctx context.Context) error {
	t := time.NewTicker(m.opt.Interval)
	defer t.Stop()
	for {
		m.Poll(ctx)
		select {
		case <-ctx.Done():
			return nil
		case <-t.C:
		}
	}
}

// Poll polls the broker once and updates the snapshot and the metrics.
func (m *LagMonitor) Poll(ctx context.Context) {
	pctx, cancel := context.WithTimeout(ctx, max(m.opt.Interval, 5*time.Second))
	defer cancel()
	now := m.opt.Now()
	snap := LagSnapshot{At: now}
	var err error
	for _, w := range m.opt.Watches {
		var g GroupStatus
		var ps []PartitionStatus
		g, ps, err = m.pollWatch(pctx, w, now)
		if err != nil {
			break
		}
		snap.Groups = append(snap.Groups, g)
		snap.Partitions = append(snap.Partitions, ps...)
	}
	m.mu.Lock()
	defer m.mu.Unlock()
	m.polled = true
	if err != nil {
		if ctx.Err() != nil {
			return
		}
		m.lastErr = err
		m.polls.WithLabelValues("error").Inc()
		m.reachable.Set(0)
		m.opt.Logger.Debug("polling lag", "err", err)
		return
	}
	m.lastOK, m.lastErr = now, nil
	m.polls.WithLabelValues("ok").Inc()
	m.reachable.Set(1)
	for i := range snap.Partitions {
		p := &snap.Partitions[i]
		k := partKey{p.Group, p.Topic, p.Partition}
		prev, had := m.prev[k]
		if had {
			if dt := now.Sub(m.snap.At).Seconds(); dt > 0 {
				p.ConsumeRate = max(0, float64(p.Committed-prev.Committed)/dt)
				p.ProduceRate = max(0, float64(p.High-prev.High)/dt)
			}
		}
		if p.Lag == 0 || !had || p.Committed != prev.Committed {
			m.moved[k] = now
		}
		switch {
		case p.Lag > 0 && now.Sub(m.moved[k]) >= m.opt.StallAfter:
			p.Status = StatusStalled
		case p.Lag > 0 && p.LagSeconds > m.opt.LagThreshold.Seconds():
			p.Status = StatusLagging
		default:
			p.Status = StatusOK
		}
		m.prev[k] = *p
		ps := strconv.Itoa(p.Partition)
		m.opt.Metrics.Lag.WithLabelValues(p.Group, p.Topic, ps).Set(float64(p.Lag))
		m.opt.Metrics.LagSeconds.WithLabelValues(p.Group, p.Topic, ps).Set(p.LagSeconds)
		if p.Committed >= 0 {
			m.committedGauge.WithLabelValues(p.Group, p.Topic, ps).Set(float64(p.Committed))
		}
		m.highGauge.WithLabelValues(p.Topic, ps).Set(float64(p.High))
	}
	for _, g := range snap.Groups {
		m.membersGauge.WithLabelValues(g.Group).Set(float64(g.Members))
		m.assignedGauge.WithLabelValues(g.Group, g.Topic).Set(float64(g.Assigned))
	}
	m.snap = snap
}

// pollWatch reads one group's partitions, offsets and assignment.
func (m *LagMonitor) pollWatch(ctx context.Context, w LagWatch, now time.Time) (GroupStatus, []PartitionStatus, error) {
	g := GroupStatus{Group: w.Group, Topic: w.Topic}
	md, err := m.client.Metadata(ctx, &kafka.MetadataRequest{Topics: []string{w.Topic}})
	if err != nil {
		return g, nil, fmt.Errorf("metadata of %s: %w", w.Topic, err)
	}
	var parts []int
	for _, t := range md.Topics {
		if t.Name == w.Topic {
			if t.Error != nil {
				return g, nil, fmt.Errorf("metadata of %s: %w", w.Topic, t.Error)
			}
			for _, p := range t.Partitions {
				parts = append(parts, p.ID)
			}
		}
	}
	sort.Ints(parts)
	g.Partitions = len(parts)
	if len(parts) == 0 {
		return g, nil, fmt.Errorf("metadata of %s: no partitions", w.Topic)
	}
	reqs := make([]kafka.OffsetRequest, 0, 2*len(parts))
	for _, p := range parts {
		reqs = append(reqs, kafka.FirstOffsetOf(p), kafka.LastOffsetOf(p))
	}
	lo, err := m.client.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{w.Topic: reqs}})
	if err != nil {
		return g, nil, fmt.Errorf("listing offsets of %s: %w", w.Topic, err)
	}
	first, high := make(map[int]int64), make(map[int]int64)
	for _, po := range lo.Topics[w.Topic] {
		if po.Error != nil {
			return g, nil, fmt.Errorf("listing offsets of %s/%d: %w", w.Topic, po.Partition, po.Error)
		}
		first[po.Partition], high[po.Partition] = po.FirstOffset, po.LastOffset
	}
	of, err := m.client.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: w.Group, Topics: map[string][]int{w.Topic: parts}})
	if err != nil {
		return g, nil, fmt.Errorf("fetching offsets of group %s: %w", w.Group, err)
	}
	// A group that never committed is "not found" on some brokers (kfake):
	// nothing committed, not a failed poll.
	if of.Error != nil && !errors.Is(of.Error, kafka.GroupIdNotFound) {
		return g, nil, fmt.Errorf("fetching offsets of group %s: %w", w.Group, of.Error)
	}
	committed := make(map[int]int64)
	for _, p := range of.Topics[w.Topic] {
		if p.Error == nil {
			committed[p.Partition] = p.CommittedOffset
		}
	}
	owners := make(map[int]string)
	dg, err := m.client.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{w.Group}})
	if err != nil {
		return g, nil, fmt.Errorf("describing group %s: %w", w.Group, err)
	}
	var sig []string
	for _, gr := range dg.Groups {
		if gr.GroupID != w.Group || gr.Error != nil {
			continue
		}
		g.State = gr.GroupState
		g.Members = len(gr.Members)
		for _, mem := range gr.Members {
			for _, t := range mem.MemberAssignments.Topics {
				if t.Topic != w.Topic {
					continue
				}
				for _, p := range t.Partitions {
					if _, dup := owners[p]; !dup {
						g.Assigned++
					}
					owners[p] = memberHost(mem.ClientHost)
					sig = append(sig, mem.MemberID+":"+strconv.Itoa(p))
				}
			}
		}
	}
	sort.Strings(sig)
	m.noteAssignment(w.Group, strings.Join(sig, ","))

	out := make([]PartitionStatus, 0, len(parts))
	for _, p := range parts {
		ps := PartitionStatus{Group: w.Group, Topic: w.Topic, Partition: p, High: high[p], Committed: -1, Owner: owners[p]}
		start := first[p]
		if c, ok := committed[p]; ok && c >= 0 {
			ps.Committed = c
			start = max(c, first[p])
		}
		ps.Lag = max(0, ps.High-start)
		if ps.Lag > 0 {
			ts, err := m.oldestUnconsumed(ctx, w.Topic, p, start)
			if err != nil {
				return g, nil, err
			}
			if !ts.IsZero() {
				ps.LagSeconds = max(0, now.Sub(ts).Seconds())
			}
		}
		out = append(out, ps)
	}
	return g, out, nil
}

// memberHost returns the address a group member connects from, without
// the port (a pod's IP in Kubernetes, the host otherwise).
func memberHost(h string) string {
	h = strings.TrimPrefix(h, "/")
	if host, _, err := net.SplitHostPort(h); err == nil {
		return host
	}
	return h
}

// noteAssignment counts a rebalance when a group's assignment differs from
// the one seen at the previous poll (rebalances between two polls that end
// in the same assignment are not seen).
func (m *LagMonitor) noteAssignment(group, sig string) {
	m.mu.Lock()
	defer m.mu.Unlock()
	old, seen := m.assigns[group]
	m.assigns[group] = sig
	if seen && old != sig {
		m.opt.Metrics.Rebalances.WithLabelValues(group).Inc()
	}
}

// oldestUnconsumed returns the timestamp of the message at offset (the
// first one not yet committed).
func (m *LagMonitor) oldestUnconsumed(ctx context.Context, topic string, partition int, offset int64) (time.Time, error) {
	res, err := m.client.Fetch(ctx, &kafka.FetchRequest{
		Topic: topic, Partition: partition, Offset: offset,
		MinBytes: 1, MaxBytes: 1 << 20, MaxWait: 10 * time.Millisecond,
	})
	if err != nil {
		return time.Time{}, fmt.Errorf("fetching %s/%d at %d: %w", topic, partition, offset, err)
	}
	if res.Error != nil {
		if errors.Is(res.Error, kafka.OffsetOutOfRange) {
			return time.Time{}, nil
		}
		return time.Time{}, fmt.Errorf("fetching %s/%d at %d: %w", topic, partition, offset, res.Error)
	}
	if res.Records == nil {
		return time.Time{}, nil
	}
	for {
		r, err := res.Records.ReadRecord()
		if err != nil {
			return time.Time{}, nil
		}
		if r.Offset >= offset {
			return r.Time, nil
		}
	}
}

// Snapshot returns the last successful poll.
func (m *LagMonitor) Snapshot() LagSnapshot {
	m.mu.Lock()
	defer m.mu.Unlock()
	s := m.snap
	s.Groups = append([]GroupStatus(nil), s.Groups...)
	s.Partitions = append([]PartitionStatus(nil), s.Partitions...)
	return s
}

// Broker is the readiness check's broker part: nil when the broker answered
// a poll within the last three intervals.
func (m *LagMonitor) Broker() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	return m.broker()
}

func (m *LagMonitor) broker() error {
	now := m.opt.Now()
	switch {
	case !m.polled:
		return errors.New("broker: not polled yet")
	case m.lastOK.IsZero():
		return fmt.Errorf("broker: unreachable: %w", m.lastErr)
	case now.Sub(m.lastOK) > 3*m.opt.Interval:
		return fmt.Errorf("broker: no answer for %s: %w", now.Sub(m.lastOK).Round(time.Second), m.lastErr)
	}
	return nil
}

// CheckGroup is the readiness check of one watched group: nil when the
// broker answers and the group has partitions of its topic assigned.
func (m *LagMonitor) CheckGroup(group string) error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.broker(); err != nil {
		return err
	}
	for _, g := range m.snap.Groups {
		if g.Group == group {
			return g.check()
		}
	}
	return nil
}

// Check is the readiness check: nil when the broker answered a poll within
// the last three intervals and every watched group has partitions assigned.
func (m *LagMonitor) Check() error {
	m.mu.Lock()
	defer m.mu.Unlock()
	if err := m.broker(); err != nil {
		return err
	}
	for _, g := range m.snap.Groups {
		if err := g.check(); err != nil {
			return err
		}
	}
	return nil
}

func (g GroupStatus) check() error {
	if g.Assigned == 0 {
		return fmt.Errorf("group %s: no partitions of %s assigned (state %q, %d members)", g.Group, g.Topic, g.State, g.Members)
	}
	return nil
}
