package processor_test

// The fault suite: one fixed event log, run once through an uninterrupted
// processor (the reference), and again under each fault; every faulty run
// must end with the same Redis state (docs/reliability.md).

import (
	"bytes"
	"context"
	"fmt"
	"math/rand/v2"
	"os"
	"os/exec"
	"path/filepath"
	"runtime"
	"sort"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

const (
	faultPartitions = 4
	faultEvents     = 10000
)

// faultLogStart is the event time of the log's first event; the log is fixed,
// so every run sees the same events at the same offsets.
var faultLogStart = time.Date(2026, 6, 1, 0, 0, 0, 0, time.UTC)

// faultClock is the fixed clock of the final rescore.
var faultClock = func() time.Time { return faultLogStart.Add(24 * time.Hour) }

type faultLog struct {
	msgs  []kafka.Message
	users []string // every user with an event, sorted
}

var (
	theFaultLog     faultLog
	theFaultLogOnce sync.Once
)

// fixedLog returns the fault suite's event log: loadgen events with a fixed
// clock, all four types and impressions (attribution's state and the
// experiment counters are part of the compared state), keyed by user except one in 40 keyed by another
// user (mis-keyed events have their own test: their effect depends on the
// interleaving of partitions).
func fixedLog() faultLog {
	theFaultLogOnce.Do(func() {
		gen := loadgen.New(loadgen.Options{Users: 300, Items: 200, Clusters: 6, Affinity: 0.85, Seed: 2026, Start: faultLogStart, Step: time.Second})
		rng := rand.New(rand.NewPCG(2026, 26))
		users := map[string]bool{}
		add := func(ev event.Event) {
			users[ev.UserID] = true
			b, err := event.Encode(ev)
			if err != nil {
				panic(err)
			}
			theFaultLog.msgs = append(theFaultLog.msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
		}
		for len(theFaultLog.msgs) < faultEvents {
			ev := gen.Next()
			// Before one click, cart or purchase in three: an impression of
			// that item among three others, so that attribution counts.
			if ev.Type != event.Browse && rng.IntN(3) == 0 && len(theFaultLog.msgs) < faultEvents-1 {
				shown := &event.Shown{}
				at := rng.IntN(4)
				for k := 0; k < 4; k++ {
					it := loadgen.ItemID(rng.IntN(200))
					if k == at {
						it = ev.ItemID
					}
					shown.Items = append(shown.Items, it)
					shown.Sources = append(shown.Sources, loadgen.Sources[k%len(loadgen.Sources)])
				}
				add(event.Event{UserID: ev.UserID, Type: event.Impression, TS: ev.TS - 1, Shown: shown})
			}
			add(ev)
		}
		for u := range users {
			theFaultLog.users = append(theFaultLog.users, u)
		}
		sort.Strings(theFaultLog.users)
	})
	return theFaultLog
}

// faultEnv is one run's broker and Redis.
type faultEnv struct {
	kf  *kafkatest.Cluster
	rs  *redistest.Server
	cfg config.Config
}

func faultTopics() []string {
	def := config.Default()
	return []string{def.Kafka.EventsTopic, def.Kafka.DLQTopic, def.Kafka.RefreshTopic, def.Kafka.ItemsTopic, def.Kafka.ItemUpdatesTopic}
}

// faultConfig is the configuration of every run of the suite: caps above
// what the log reaches (trimming keeps the highest scores, and which of two
// equal-ish scores survives depends on the order of float sums), short
// group timeouts so that a dead member leaves quickly.
func faultConfig(brokers []string, redisAddr string) config.Config {
	cfg := testConfig(brokers, redisAddr)
	cfg.Model.UserItemsCap = 5000
	cfg.Model.ItemUsersCap = 5000
	// Attribution through the user's current list depends on which list
	// was current when an event was applied (timing); impressions do not.
	cfg.Attribution.ListFallback = false
	cfg.Model.CoocCap = 5000
	cfg.Kafka.SessionTimeout = time.Second
	cfg.Kafka.RebalanceTimeout = 2 * time.Second
	cfg.Scorer.Workers = 2
	// Several item owner flushes per run, and kills that land between
	// them.
	cfg.Ingest.ItemFlushInterval = ownerFlush
	return cfg
}

func newFaultEnv(t *testing.T) *faultEnv {
	t.Helper()
	kf := kafkatest.Start(t, faultPartitions, faultTopics()...)
	rs := redistest.Start(t)
	return &faultEnv{kf: kf, rs: rs, cfg: faultConfig(kf.Brokers, rs.Addr)}
}

// produceLog writes the fixed log, or the messages from..to of it.
func (e *faultEnv) produceLog(t *testing.T) {
	t.Helper()
	produceOrdered(t, e.kf, e.cfg.Kafka.EventsTopic, faultPartitions, fixedLog().msgs)
}

// produceChunk writes chunk i of the fixed log cut into n: the i-th n-th of
// every partition's messages, so that chunks 0..n-1 written in order put
// every message at its produceLog offset.
func (e *faultEnv) produceChunk(t *testing.T, i, n int) {
	t.Helper()
	per := byPartition(fixedLog().msgs, faultPartitions)
	var chunk []kafka.Message
	for _, pm := range per {
		chunk = append(chunk, pm[len(pm)*i/n:len(pm)*(i+1)/n]...)
	}
	produceOrdered(t, e.kf, e.cfg.Kafka.EventsTopic, faultPartitions, chunk)
}

// produceOrdered writes msgs partition by partition, in order, in
// acknowledged chunks, so that every run has the same messages at the same
// offsets. The partition is kafka.Hash's choice for a key (FNV-1a), and
// message index modulo partitions for no key.
//
// A produce that fails (a leader move answers NOT_LEADER_FOR_PARTITION) is
// retried on a new transport, whose metadata names the new leader (a
// kafka-go transport refreshes its cached metadata only on a timer, up to 6 s
// by default), with records built anew: a kafka.Record's key and value are
// readers that the failed attempt may have drained, and resending them
// appends empty messages. Before the retry the partition's high watermark
// tells whether the failed attempt was appended after all; each acknowledged
// chunk must start at the offset the previous one ended at.
// byPartition splits msgs by the partition produceOrdered writes each to,
// keeping their order.
func byPartition(msgs []kafka.Message, partitions int) [][]kafka.Message {
	per := make([][]kafka.Message, partitions)
	all := allPartitions(partitions)
	var h kafka.Hash
	for i, m := range msgs {
		p := i % partitions
		if m.Key != nil {
			p = h.Balance(m, all...)
		}
		per[p] = append(per[p], m)
	}
	return per
}

func produceOrdered(t *testing.T, kf *kafkatest.Cluster, topic string, partitions int, msgs []kafka.Message) {
	t.Helper()
	if err := produceOrderedErr(kf, topic, partitions, msgs); err != nil {
		t.Fatal(err)
	}
}

// produceOrderedErr is produceOrdered returning its failure, for a
// goroutine that must not stop the test itself.
func produceOrderedErr(kf *kafkatest.Cluster, topic string, partitions int, msgs []kafka.Message) error {
	per := byPartition(msgs, partitions)
	records := func(ms []kafka.Message) kafka.RecordReader {
		rs := make([]kafka.Record, len(ms))
		for i, m := range ms {
			rs[i].Value = kafka.NewBytes(m.Value)
			if m.Key != nil {
				rs[i].Key = kafka.NewBytes(m.Key)
			}
		}
		return kafka.NewRecordReader(rs...)
	}
	var tr *kafka.Transport
	var c *kafka.Client
	renew := func() {
		if tr != nil {
			tr.CloseIdleConnections()
		}
		tr = &kafka.Transport{}
		c = &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	}
	renew()
	defer func() { tr.CloseIdleConnections() }()
	ctx := context.Background()
	high := func(p int) (int64, error) {
		res, err := c.ListOffsets(ctx, &kafka.ListOffsetsRequest{Topics: map[string][]kafka.OffsetRequest{topic: {kafka.LastOffsetOf(p)}}})
		if err != nil {
			return 0, err
		}
		for _, po := range res.Topics[topic] {
			if po.Partition == p {
				return po.LastOffset, po.Error
			}
		}
		return 0, fmt.Errorf("no offsets for partition %d", p)
	}
	for p, ms := range per {
		next := int64(-1) // the offset of ms[0], once known
		pending := 0      // messages of a failed produce at next, maybe appended
		fails := 0
		for len(ms) > 0 {
			if fails > 0 {
				time.Sleep(100 * time.Millisecond)
				renew()
			}
			if next < 0 || pending > 0 {
				hw, err := high(p)
				if err != nil {
					if fails++; fails > 50 {
						return fmt.Errorf("producing to %s/%d: reading the high watermark: %v", topic, p, err)
					}
					continue
				}
				switch {
				case next < 0:
					next = hw
				case hw == next+int64(pending): // appended after all
					ms, next = ms[pending:], hw
				case hw != next:
					return fmt.Errorf("producing to %s/%d: a failed produce of %d messages at offset %d left the high watermark at %d", topic, p, pending, next, hw)
				}
				pending = 0
				continue
			}
			n := min(len(ms), 500)
			res, err := c.Produce(ctx, &kafka.ProduceRequest{Topic: topic, Partition: p, RequiredAcks: kafka.RequireAll, Records: records(ms[:n])})
			if err == nil && res.Error != nil {
				err = res.Error
			}
			if err != nil {
				if fails++; fails > 50 {
					return fmt.Errorf("producing to %s/%d: %v", topic, p, err)
				}
				pending = n
				continue
			}
			if res.BaseOffset != next {
				return fmt.Errorf("producing to %s/%d: %d messages appended at offset %d, want %d", topic, p, n, res.BaseOffset, next)
			}
			ms, next, fails = ms[n:], next+int64(n), 0
		}
	}
	return nil
}

// committedOffsets returns the group's committed offsets on topic (nil
// while the group does not exist yet), without failing the test.
func committedOffsets(kf *kafkatest.Cluster, group, topic string) map[int]int64 {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	tr := &kafka.Transport{} // fresh metadata (see produceOrdered)
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 10 * time.Second, Transport: tr}
	res, err := c.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: allPartitions(faultPartitions)}})
	if err != nil || res.Error != nil {
		return nil
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error == nil && p.CommittedOffset > 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out
}

// committedTotal is how many events of the log the ingest group committed.
func (e *faultEnv) committedTotal(t *testing.T) int64 {
	var n int64
	for _, o := range committedOffsets(e.kf, e.cfg.Kafka.IngestGroup, e.cfg.Kafka.EventsTopic) {
		n += o
	}
	return n
}

// waitAllCommitted waits until group committed every message of topic.
func waitAllCommitted(t *testing.T, kf *kafkatest.Cluster, group, topic string, timeout time.Duration) {
	t.Helper()
	_, high := kf.Offsets(t, topic)
	waitFor(t, timeout, group+" to commit all of "+topic, func() bool {
		c := committedOffsets(kf, group, topic)
		for p, h := range high {
			if c[p] < h {
				return false
			}
		}
		return true
	})
}

// waitDone waits until the whole log is committed by the ingest group and
// every refresh request by the score group.
func (e *faultEnv) waitDone(t *testing.T, timeout time.Duration) {
	t.Helper()
	for _, w := range e.groups() {
		waitAllCommitted(t, e.kf, w.group, w.topic, timeout)
	}
}

// groups are the consumer groups and topics a run must commit entirely
// before its state is final: ingest, score and, with item owners, the
// item owners (after the ingest group committed the log, every
// repartition message is in their topic).
func (e *faultEnv) groups() []struct{ group, topic string } {
	k := e.cfg.Kafka
	gs := []struct{ group, topic string }{
		{k.IngestGroup, k.EventsTopic},
		{k.ScoreGroup, k.RefreshTopic},
	}
	if e.cfg.Ingest.ItemOwner {
		gs = append(gs, struct{ group, topic string }{k.ItemOwnerGroup, k.ItemUpdatesTopic})
	}
	return gs
}

// waitDoneWhileRunning is waitDone that fails at once, with the output,
// when the subprocess p exits before the log is done.
func (e *faultEnv) waitDoneWhileRunning(t *testing.T, p *subprocess, timeout time.Duration) {
	t.Helper()
	for _, w := range e.groups() {
		_, high := e.kf.Offsets(t, w.topic)
		waitFor(t, timeout, w.group+" to commit all of "+w.topic, func() bool {
			if err, exited := p.wait(0); exited {
				t.Fatalf("recstream run exited before %s committed all of %s: %v", w.group, w.topic, err)
			}
			c := committedOffsets(e.kf, w.group, w.topic)
			for part, h := range high {
				if c[part] < h {
					return false
				}
			}
			return true
		})
	}
}

// describeGroup is a group's state and members' assignments, for logs.
func describeGroup(kf *kafkatest.Cluster, group string) string {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	c := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 5 * time.Second}
	res, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 {
		return fmt.Sprintf("describe failed: %v", err)
	}
	g := res.Groups[0]
	out := fmt.Sprintf("state %q err %v", g.GroupState, g.Error)
	for _, m := range g.Members {
		out += fmt.Sprintf("; member %s assigned %v", m.MemberID, m.MemberAssignments.Topics)
	}
	return out
}

// groupMember is one member of a consumer group and the partitions of
// the topic it was assigned.
type groupMember struct {
	id         string
	partitions []int
}

// groupMembers returns a group's state and members with their partitions of
// topic, without failing the test (state "" when the broker did not answer).
func groupMembers(kf *kafkatest.Cluster, group, topic string) (string, []groupMember) {
	ctx, cancel := context.WithTimeout(context.Background(), 5*time.Second)
	defer cancel()
	tr := &kafka.Transport{}
	defer tr.CloseIdleConnections()
	c := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 5 * time.Second, Transport: tr}
	res, err := c.DescribeGroups(ctx, &kafka.DescribeGroupsRequest{GroupIDs: []string{group}})
	if err != nil || len(res.Groups) != 1 || res.Groups[0].Error != nil {
		return "", nil
	}
	g := res.Groups[0]
	var ms []groupMember
	for _, m := range g.Members {
		gm := groupMember{id: m.MemberID}
		for _, tp := range m.MemberAssignments.Topics {
			if tp.Topic == topic {
				gm.partitions = append(gm.partitions, tp.Partitions...)
			}
		}
		sort.Ints(gm.partitions)
		ms = append(ms, gm)
	}
	return g.GroupState, ms
}

// snapshot is the comparable final state of a run: every key under the
// prefix except the lists (fences included: they are deterministic), and
// every user's list recomputed from that state with a fixed clock.
type snapshot struct {
	state map[string]stateValue
	lists map[string]store.List
}

func takeSnapshot(t *testing.T, cfg config.Config, rs *redistest.Server) snapshot {
	t.Helper()
	return takeSnapshotOf(t, cfg, rs, fixedLog().users, faultClock)
}

// takeSnapshotOf is takeSnapshot for another log: its users and the clock
// of the final rescore.
func takeSnapshotOf(t *testing.T, cfg config.Config, rs *redistest.Server, users []string, clock func() time.Time) snapshot {
	t.Helper()
	s := snapshot{state: dumpState(t, []*redis.Client{rs.Client(t)}, cfg.Redis.KeyPrefix), lists: map[string]store.List{}}
	p, err := processor.New(cfg, processor.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer p.Redis.Close()
	o := scorer.OptionsFromConfig(cfg)
	o.ItemNeighbours, o.UsersPerItem, o.NeighbourItems, o.TrendingSize = 1000, 1000, 1000, 1000
	o.Now = clock
	ls, err := scorer.New(p.Store, o).Recommend(context.Background(), users)
	if err != nil {
		t.Fatal(err)
	}
	for i, u := range users {
		s.lists[u] = ls[i]
	}
	return s
}

// diffSnapshots returns up to 10 differences: floats must agree within 1e-9
// relative, everything else exactly.
func diffSnapshots(got, want snapshot) []string {
	d := diffState(got.state, want.state)
	var ul []string
	for u, w := range want.lists {
		g, ok := got.lists[u]
		if !ok {
			ul = append(ul, "no list for "+u)
			continue
		}
		if err := sameList(g, w); err != nil {
			ul = append(ul, fmt.Sprintf("list of %s: %v", u, err))
		}
	}
	sort.Strings(ul)
	d = append(d, ul...)
	return d[:min(len(d), 10)]
}

var (
	refSnap  snapshot
	refOnce  sync.Once
	refTaken bool
)

// reference returns the snapshot of the fixed log through one uninterrupted
// in-process processor with the default configuration (item owners;
// computed once per test binary).
func reference(t *testing.T) snapshot {
	t.Helper()
	refOnce.Do(func() {
		start := time.Now()
		e := newFaultEnv(t)
		_, stop := runProcessor(t, e.cfg)
		e.produceLog(t)
		if d := e.topicDiff(t); len(d) > 0 {
			t.Fatalf("reference: the events topic does not hold the fixed log:\n%s", strings.Join(d, "\n"))
		}
		waitAllCommitted(t, e.kf, e.cfg.Kafka.IngestGroup, e.cfg.Kafka.EventsTopic, 120*time.Second)
		t.Logf("reference: ingest done after %s", time.Since(start).Round(time.Millisecond))
		e.waitDone(t, 120*time.Second)
		stop()
		refSnap = takeSnapshot(t, e.cfg, e.rs)
		exp := refSnap.state[e.cfg.Redis.KeyPrefix+"{g}:exp"].floats
		if exp["|imp"] < 500 || exp["|click"] < 50 || exp["|purchase"] < 5 {
			t.Fatalf("reference: the log attributes too little to test attribution: %v impressions, %v clicks, %v purchases", exp["|imp"], exp["|click"], exp["|purchase"])
		}
		refTaken = true
		t.Logf("reference: %d events, %d keys, %d users in %s", faultEvents, len(refSnap.state), len(refSnap.lists), time.Since(start).Round(time.Millisecond))
	})
	if !refTaken {
		t.Fatal("the reference run failed")
	}
	return refSnap
}

// checkAgainstReference compares the run's final state with the reference,
// after checking that the events topic holds the fixed log at the offsets of
// an uninterrupted run (a difference there is the test's produce path, not
// the processor) and that no event of it went to the dead-letter topic.
func (e *faultEnv) checkAgainstReference(t *testing.T) {
	t.Helper()
	want := reference(t)
	if d := e.topicDiff(t); len(d) > 0 {
		t.Fatalf("the events topic does not hold the fixed log:\n%s", strings.Join(d, "\n"))
	}
	if dl := e.kf.ReadAll(t, e.cfg.Kafka.DLQTopic, 30*time.Second); len(dl) > 0 {
		t.Errorf("%d dead letters from a log of valid events, the first from %s", len(dl), deadLetterSource(dl[0]))
	}
	got := takeSnapshot(t, e.cfg, e.rs)
	if e.cfg.Ingest.ItemOwner && itemsOwnersWrote(got) == 0 {
		t.Fatal("no item was written by an item owner")
	}
	// The item writes' versions depend on how many flushes wrote an item
	// (timing), and the two item write paths keep different bookkeeping:
	// compare what both keep (ownedView).
	got, want = ownedView(got, e.cfg.Redis.KeyPrefix), ownedView(want, e.cfg.Redis.KeyPrefix)
	if d := diffSnapshots(got, want); len(d) > 0 {
		t.Fatalf("final state differs from the reference (%d vs %d keys):\n%s", len(got.state), len(want.state), strings.Join(d, "\n"))
	}
}

// itemsOwnersWrote is the number of items in s whose meta hash an item
// owner wrote (it holds the version v).
func itemsOwnersWrote(s snapshot) int {
	n := 0
	for k, v := range s.state {
		if _, ok := v.floats["v"]; ok && strings.HasSuffix(k, "}:m") && strings.Contains(k, "{i:") {
			n++
		}
	}
	return n
}

// The recstream binary, built once for the subprocess tests.
var (
	binOnce sync.Once
	binPath string
	binErr  error
	binDir  string
)

func recstreamBinary(t *testing.T) string {
	t.Helper()
	binOnce.Do(func() {
		binDir, binErr = os.MkdirTemp("", "recstream-fault-")
		if binErr != nil {
			return
		}
		binPath = filepath.Join(binDir, "recstream")
		_, file, _, _ := runtime.Caller(0)
		cmd := exec.Command("go", "build", "-o", binPath, "./cmd/recstream")
		cmd.Dir = filepath.Dir(filepath.Dir(file))
		if out, err := cmd.CombinedOutput(); err != nil {
			binErr = fmt.Errorf("go build: %v\n%s", err, out)
		}
	})
	if binErr != nil {
		t.Fatal(binErr)
	}
	return binPath
}

// quietRedis drops go-redis's internal log lines (dial failures repeated on
// every retry while a fault test has Redis down).
type quietRedis struct{}

func (quietRedis) Printf(context.Context, string, ...any) {}

func TestMain(m *testing.M) {
	redis.SetLogger(quietRedis{})
	code := m.Run()
	if binDir != "" {
		_ = os.RemoveAll(binDir)
	}
	os.Exit(code)
}

// subprocess is `recstream run` on the env's broker and Redis.
type subprocess struct {
	cmd    *exec.Cmd
	log    *strings.Builder // read only after exit
	done   chan struct{}
	err    error
	exited time.Time
}

// wait waits up to timeout for the exit; ok is false on a timeout.
func (s *subprocess) wait(timeout time.Duration) (err error, ok bool) {
	select {
	case <-s.done:
		return s.err, true
	case <-time.After(timeout):
		return nil, false
	}
}

// kill sends SIGKILL, waits for the exit and returns the output.
func (s *subprocess) kill() string {
	_ = s.cmd.Process.Kill()
	<-s.done
	return s.log.String()
}

func (e *faultEnv) setArgs(extra ...string) []string {
	c := e.cfg
	sets := []string{
		"kafka.brokers=" + strings.Join(c.Kafka.Brokers, ","),
		"kafka.create_topics=false",
		"kafka.max_wait=" + c.Kafka.MaxWait.String(),
		"kafka.session_timeout=" + c.Kafka.SessionTimeout.String(),
		"kafka.rebalance_timeout=" + c.Kafka.RebalanceTimeout.String(),
		"redis.addrs=" + strings.Join(c.Redis.Addrs, ","),
		"admin.listen=",
		"ingest.batch_max_wait=" + c.Ingest.BatchMaxWait.String(),
		"ingest.item_window=" + c.Ingest.ItemWindow.String(),
		fmt.Sprintf("ingest.item_owner=%v", c.Ingest.ItemOwner),
		"ingest.item_flush_interval=" + c.Ingest.ItemFlushInterval.String(),
		fmt.Sprintf("ingest.item_window_events=%d", c.Ingest.ItemWindowEvents),
		"scorer.debounce=" + c.Scorer.Debounce.String(),
		"scorer.exclude_seen=false",
		"scorer.workers=2",
		"run.shutdown_timeout=" + c.Run.ShutdownTimeout.String(),
		fmt.Sprintf("model.user_items_cap=%d", c.Model.UserItemsCap),
		fmt.Sprintf("model.item_users_cap=%d", c.Model.ItemUsersCap),
		fmt.Sprintf("model.cooc_cap=%d", c.Model.CoocCap),
		fmt.Sprintf("model.next_cap=%d", c.Model.NextCap),
		fmt.Sprintf("attribution.list_fallback=%v", c.Attribution.ListFallback),
		"log.level=warn",
	}
	sets = append(sets, extra...)
	args := []string{"run"}
	for _, s := range sets {
		args = append(args, "--set", s)
	}
	return args
}

func (e *faultEnv) startSubprocess(t *testing.T, extra ...string) *subprocess {
	t.Helper()
	cmd := exec.Command(recstreamBinary(t), e.setArgs(extra...)...)
	var log strings.Builder
	cmd.Stdout = &log
	cmd.Stderr = &log
	if err := cmd.Start(); err != nil {
		t.Fatal(err)
	}
	s := &subprocess{cmd: cmd, log: &log, done: make(chan struct{})}
	go func() {
		s.err = cmd.Wait()
		s.exited = time.Now()
		close(s.done)
	}()
	t.Cleanup(func() {
		out := s.kill()
		if t.Failed() {
			if len(out) > 8<<10 {
				out = "..." + out[len(out)-8<<10:]
			}
			t.Logf("recstream run (pid %d) output:\n%s", cmd.Process.Pid, out)
		}
	})
	return s
}

func allPartitions(n int) []int {
	out := make([]int, n)
	for i := range out {
		out[i] = i
	}
	return out
}

// topicDiff reads the whole events topic back and returns how it differs
// from the fixed log, one line per partition: the message count, and the
// first and last offsets whose key or value is not the log's. Nil when the
// topic holds exactly the log at the offsets of an uninterrupted run.
func (e *faultEnv) topicDiff(t *testing.T) []string {
	t.Helper()
	per := byPartition(fixedLog().msgs, faultPartitions)
	got := make([][]kafka.Message, faultPartitions)
	for _, m := range e.kf.ReadAll(t, e.cfg.Kafka.EventsTopic, 60*time.Second) {
		if m.Partition >= 0 && m.Partition < faultPartitions {
			got[m.Partition] = append(got[m.Partition], m)
		}
	}
	var d []string
	for p, want := range per {
		bad, first, last := 0, int64(-1), int64(-1)
		for i := 0; i < min(len(got[p]), len(want)); i++ {
			g := got[p][i]
			if g.Offset != int64(i) || !bytes.Equal(g.Key, want[i].Key) || !bytes.Equal(g.Value, want[i].Value) {
				if bad++; first < 0 {
					first = int64(i)
				}
				last = int64(i)
			}
		}
		if bad > 0 || len(got[p]) != len(want) {
			d = append(d, fmt.Sprintf("partition %d: %d messages, the log has %d; %d differ from the log's, offsets %d to %d", p, len(got[p]), len(want), bad, first, last))
		}
	}
	return d
}

// deadLetterSource is a dead letter's reason and source partition and offset,
// from its headers.
func deadLetterSource(m kafka.Message) string {
	hs := map[string]string{}
	for _, h := range m.Headers {
		hs[h.Key] = string(h.Value)
	}
	return fmt.Sprintf("partition %s offset %s (%s)", hs[consumer.HeaderPartition], hs[consumer.HeaderOffset], hs[consumer.HeaderReason])
}
