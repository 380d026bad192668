package processor_test

import (
	"context"
	"fmt"
	"math"
	"sort"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/processortest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// runProcessor starts a processor on cfg and stops it at cleanup; the
// returned function stops it earlier.
func runProcessor(t *testing.T, cfg config.Config) (*processor.Processor, func()) {
	t.Helper()
	p, _, stop := processortest.Run(t, cfg, processor.Deps{Registerer: prometheus.NewRegistry()})
	return p, stop
}

// produceEvents writes evs keyed by user (one call: per-partition order and
// offsets are the same in every cluster given the same events).
func produceEvents(t *testing.T, kf *kafkatest.Cluster, topic string, evs []event.Event) {
	t.Helper()
	msgs := make([]kafka.Message, len(evs))
	for i, ev := range evs {
		b, err := event.Encode(ev)
		if err != nil {
			t.Fatal(err)
		}
		msgs[i] = kafka.Message{Key: []byte(ev.UserID), Value: b}
	}
	kf.Produce(t, topic, msgs...)
}

// waitCommitted waits until group has committed every message of topic.
func waitCommitted(t *testing.T, kf *kafkatest.Cluster, group, topic string, timeout time.Duration) {
	t.Helper()
	_, high := kf.Offsets(t, topic)
	waitFor(t, timeout, group+" to commit all of "+topic, func() bool {
		c, err := clusterCommitted(kf, group, topic, high)
		if err != nil {
			return false // the group does not exist yet
		}
		for p, h := range high {
			if c[p] < h {
				return false
			}
		}
		return true
	})
}

// dumpState reads every key under prefix from the given nodes (each master
// of a Cluster, or the one server), except the recommendation lists, into
// comparable strings; float scores are kept as numbers for a tolerant
// comparison.
type stateValue struct {
	strs   []string
	floats map[string]float64
	ttl    bool
}

func dumpState(t *testing.T, nodes []*redis.Client, prefix string) map[string]stateValue {
	t.Helper()
	ctx := context.Background()
	out := map[string]stateValue{}
	for _, c := range nodes {
		iter := c.Scan(ctx, 0, prefix+"*", 1000).Iterator()
		for iter.Next(ctx) {
			k := iter.Val()
			// Lists, the item -> lists index and the EASE model depend on
			// when they were written, not on the applied events.
			if strings.HasSuffix(k, ":list") || strings.Contains(k, ":list:") || strings.HasSuffix(k, ":inl") ||
				strings.Contains(k, "{g}:ease") {
				continue
			}
			var v stateValue
			typ, err := c.Type(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			switch typ {
			case "zset":
				zs, err := c.ZRangeWithScores(ctx, k, 0, -1).Result()
				if err != nil {
					t.Fatal(err)
				}
				v.floats = map[string]float64{}
				for _, z := range zs {
					v.floats[z.Member.(string)] = z.Score
				}
			case "hash":
				h, err := c.HGetAll(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				v.floats = map[string]float64{}
				for f, s := range h {
					if f == "x" || f == "k" {
						continue // TTL-renewal bookkeeping in wall-clock time
					}
					if f == "o" && strings.HasSuffix(k, "}:m") {
						continue // a bound on the oldest recent user, tightened when a sweep runs: depends on batching
					}
					x, err := strconv.ParseFloat(s, 64)
					if err != nil {
						v.strs = append(v.strs, f+"="+s)
						continue
					}
					v.floats[f] = x
				}
				sort.Strings(v.strs)
			case "list":
				if v.strs, err = c.LRange(ctx, k, 0, -1).Result(); err != nil {
					t.Fatal(err)
				}
				if strings.HasSuffix(k, "}:cl") || strings.HasSuffix(k, "}:nx") {
					// A co-occurrence or next-item row: its entries' order
					// and folding depend on batch timing, what they sum to
					// does not.
					if v.floats, err = store.CoocEntries(v.strs); err != nil {
						t.Fatal(err)
					}
					v.strs = nil
				}
			case "string":
				s, err := c.Get(ctx, k).Result()
				if err != nil {
					t.Fatal(err)
				}
				v.strs = []string{s}
				if strings.HasSuffix(k, "}:s") && strings.Contains(k, "{u:") {
					// A user's state blob: its weights and purchases
					// compared as numbers, its log as strings.
					us, err := store.DecodeUserState([]byte(s))
					if err != nil {
						t.Fatal(err)
					}
					v.floats = map[string]float64{}
					for _, w := range us.Weights {
						v.floats["w|"+w.ID] = w.Score
					}
					for _, b := range us.Purchased {
						v.floats["buy|"+b.ID] = b.Score
					}
					v.strs = us.Log
				}
			default:
				v.strs = []string{"type " + typ}
			}
			ttl, err := c.TTL(ctx, k).Result()
			if err != nil {
				t.Fatal(err)
			}
			v.ttl = ttl > 0
			out[k] = v
		}
		if err := iter.Err(); err != nil {
			t.Fatal(err)
		}
	}
	return out
}

func closeEnough(a, b float64) bool {
	return a == b || math.Abs(a-b) <= 1e-9*math.Max(math.Abs(a), math.Abs(b))
}

// diffState returns up to 10 differences between two dumps.
func diffState(a, b map[string]stateValue) []string {
	var d []string
	for k, va := range a {
		vb, ok := b[k]
		if !ok {
			d = append(d, "only in the first: "+k)
			continue
		}
		if fmt.Sprint(va.strs) != fmt.Sprint(vb.strs) || va.ttl != vb.ttl || len(va.floats) != len(vb.floats) {
			d = append(d, fmt.Sprintf("%s: %v %v ttl %v != %v %v ttl %v", k, va.strs, len(va.floats), va.ttl, vb.strs, len(vb.floats), vb.ttl))
			continue
		}
		for f, x := range va.floats {
			if y, ok := vb.floats[f]; !ok || !closeEnough(x, y) {
				d = append(d, fmt.Sprintf("%s %s: %v != %v", k, f, x, y))
				break
			}
		}
	}
	for k := range b {
		if _, ok := a[k]; !ok {
			d = append(d, "only in the second: "+k)
		}
	}
	sort.Strings(d)
	return d[:min(len(d), 10)]
}

// sameList reports whether two lists rank the same items with the same
// scores (items of equal score may swap places).
func sameList(a, b store.List) error {
	if len(a.Items) != len(b.Items) {
		return fmt.Errorf("%d items != %d items", len(a.Items), len(b.Items))
	}
	for i := range a.Items {
		x, y := a.Items[i], b.Items[i]
		if !closeEnough(x.Score, y.Score) {
			return fmt.Errorf("position %d: %s %.17g != %s %.17g", i, x.Item, x.Score, y.Item, y.Score)
		}
		if x.Item != y.Item && !closeEnough(x.Score, a.Items[min(i+1, len(a.Items)-1)].Score) && !closeEnough(x.Score, a.Items[max(i-1, 0)].Score) {
			return fmt.Errorf("position %d: %s != %s", i, x.Item, y.Item)
		}
	}
	return nil
}

// TestClusterThreeProcessorsMatchOneProcessor runs one generated log through
// three processors (one consumer group, six partitions) on a three-master
// Redis Cluster, and through one processor on one standalone Redis, and
// checks that both end with the same state and the same lists. The one
// processor runs item owners (the default); with item_scripts the three
// processors write the item half with the item scripts
// (ingest.item_owner false): they end with the same state but for what
// only one write path keeps (ownedState).
func TestClusterThreeProcessorsMatchOneProcessor(t *testing.T) {
	for _, owners := range []bool{false, true} {
		name := "item_scripts"
		if owners {
			name = "item_owners"
		}
		t.Run(name, func(t *testing.T) { testClusterMatchesOne(t, owners) })
	}
}

func testClusterMatchesOne(t *testing.T, owners bool) {
	const partitions = 6
	def := config.Default()
	topics := def.Topics()
	gen := loadgen.New(loadgen.Options{Users: 200, Items: 150, Clusters: 5, Affinity: 0.9, Seed: 7})
	evs := make([]event.Event, 6000)
	users := map[string]bool{}
	for i := range evs {
		evs[i] = gen.Next()
		users[evs[i].UserID] = true
	}
	var userIDs []string
	for u := range users {
		userIDs = append(userIDs, u)
	}
	sort.Strings(userIDs)
	mutate := func(c *config.Config) {
		// Caps above what the log reaches: trimming order-dependent sums
		// would make the comparison depend on batching, not on the
		// topology.
		c.Model.UserItemsCap = 1000
		c.Model.ItemUsersCap = 1000
		c.Model.CoocCap = 1000
		c.Scorer.Workers = 2
		// Attribution through the current list depends on when lists
		// were written, not on the topology.
		c.Attribution.ListFallback = false
	}

	// Reference: one processor, one Redis.
	kfRef := kafkatest.Start(t, partitions, topics...)
	rs := redistest.Start(t)
	refCfg := testConfig(kfRef.Brokers, rs.Addr)
	mutate(&refCfg)
	_, stopRef := runProcessor(t, refCfg)

	// Three processors, one Redis Cluster of three masters.
	kf := kafkatest.Start(t, partitions, topics...)
	rc := redistest.StartCluster(t, 3)
	cfg := testConfig(kf.Brokers, rc.Addrs[0])
	cfg.Redis.Addrs = rc.Addrs
	mutate(&cfg)
	cfg.Ingest.ItemOwner = owners
	var procs []*processor.Processor
	var stops []func()
	for i := 0; i < 3; i++ {
		p, stop := runProcessor(t, cfg)
		procs = append(procs, p)
		stops = append(stops, stop)
	}
	if _, ok := procs[0].Redis.(*redis.ClusterClient); !ok {
		t.Fatalf("redis client is %T, want a ClusterClient for %d addresses", procs[0].Redis, len(cfg.Redis.Addrs))
	}

	// Produce once all three hold partitions, in two halves, so that the
	// second half arrives while the first is being applied.
	held := kf.WaitMembers(t, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic, 3, 60*time.Second)
	t.Logf("ingest group stable: partitions held per processor %v", held)
	produceEvents(t, kfRef, refCfg.Kafka.EventsTopic, evs[:3000])
	produceEvents(t, kf, cfg.Kafka.EventsTopic, evs[:3000])
	time.Sleep(500 * time.Millisecond)
	produceEvents(t, kfRef, refCfg.Kafka.EventsTopic, evs[3000:])
	produceEvents(t, kf, cfg.Kafka.EventsTopic, evs[3000:])
	waitCommitted(t, kfRef, refCfg.Kafka.IngestGroup, refCfg.Kafka.EventsTopic, 60*time.Second)
	waitCommitted(t, kf, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic, 60*time.Second)
	waitCommitted(t, kfRef, refCfg.Kafka.ScoreGroup, refCfg.Kafka.RefreshTopic, 30*time.Second)
	waitCommitted(t, kf, cfg.Kafka.ScoreGroup, cfg.Kafka.RefreshTopic, 30*time.Second)
	// committed once flushed: every item written
	waitCommitted(t, kfRef, refCfg.Kafka.ItemOwnerGroup, refCfg.Kafka.ItemUpdatesTopic, 30*time.Second)
	if owners {
		waitCommitted(t, kf, cfg.Kafka.ItemOwnerGroup, cfg.Kafka.ItemUpdatesTopic, 30*time.Second)
	}

	// Every user's list was written on the cluster by the running pipeline.
	for _, u := range userIDs {
		if _, found, err := procs[0].Store.ReadList(context.Background(), u); err != nil || !found {
			t.Fatalf("no list for %s on the cluster (err %v)", u, err)
		}
	}
	active := 0
	for i, p := range procs {
		parts := p.Ingest.Lag()
		if len(parts) > 0 {
			active++
		}
		t.Logf("processor %d applied batches of partitions %v", i, sortedKeys(parts))
	}
	if active < 2 {
		t.Errorf("only %d of 3 processors consumed events; the group did not share the partitions", active)
	}
	stopRef()
	for _, s := range stops {
		s()
	}

	var nodes []*redis.Client
	for _, n := range rc.Nodes {
		nodes = append(nodes, n.Client(t))
	}
	got := dumpState(t, nodes, cfg.Redis.KeyPrefix)
	want := dumpState(t, []*redis.Client{rs.Client(t)}, refCfg.Redis.KeyPrefix)
	if owners {
		written := 0
		for k, v := range got {
			if _, ok := v.floats["v"]; ok && strings.HasPrefix(k, cfg.Redis.KeyPrefix+"{i:") && strings.HasSuffix(k, "}:m") {
				written++
			}
		}
		if written == 0 {
			t.Fatal("no item was written by an item owner")
		}
		t.Logf("%d items written by item owners", written)
	}
	got, want = ownedState(got, cfg.Redis.KeyPrefix), ownedState(want, refCfg.Redis.KeyPrefix)
	if d := diffState(got, want); len(d) > 0 {
		t.Fatalf("cluster state differs from the standalone state (%d vs %d keys):\n%s", len(got), len(want), strings.Join(d, "\n"))
	}
	perNode := make([]int, len(nodes))
	for i, n := range nodes {
		perNode[i] = int(n.DBSize(context.Background()).Val())
	}
	t.Logf("%d keys, identical on the cluster and on one Redis; keys per cluster node %v", len(want), perNode)

	// The lists, computed once more from the final state on each side.
	// Float sums (co-occurrence, degrees, trending) are applied in another
	// order on each side, so they agree to 1e-9 but not bit for bit; the
	// top-n reads are widened past every item and user so that a near tie
	// at a cut-off does not pick a different member on each side.
	ctx := context.Background()
	wide := func(c config.Config, st *store.Store) *scorer.Scorer {
		o := scorer.OptionsFromConfig(c)
		o.ItemNeighbours, o.UsersPerItem, o.NeighbourItems, o.TrendingSize = 1000, 1000, 1000, 1000
		return scorer.New(st, o)
	}
	cp, err := processor.New(cfg, processor.Deps{}) // fresh clients: the processors closed theirs
	if err != nil {
		t.Fatal(err)
	}
	defer cp.Redis.Close()
	rp, err := processor.New(refCfg, processor.Deps{})
	if err != nil {
		t.Fatal(err)
	}
	defer rp.Redis.Close()
	gl, err := wide(cfg, cp.Store).Recommend(ctx, userIDs)
	if err != nil {
		t.Fatal(err)
	}
	wl, err := wide(refCfg, rp.Store).Recommend(ctx, userIDs)
	if err != nil {
		t.Fatal(err)
	}
	for i := range gl {
		if len(gl[i].Items) == 0 {
			t.Fatalf("user %s: empty list", userIDs[i])
		}
		if err := sameList(gl[i], wl[i]); err != nil {
			t.Errorf("user %s: cluster list differs from the standalone list: %v", userIDs[i], err)
		}
	}
}

// ownedState is a state without what only one of the two item write
// paths keeps: trending's fences and versions, the items' version v and
// their rows' lengths and pairs rl, nl, rp, np (item owners), and c, a bound on the size
// of an item's recent users (at least it: item scripts count the members
// a ZADD added, item owners every member they set).
func ownedState(s map[string]stateValue, prefix string) map[string]stateValue {
	out := make(map[string]stateValue, len(s))
	for k, v := range s {
		switch {
		case k == prefix+"{g}:trend:f" || k == prefix+"{g}:trend:v":
			continue
		case strings.HasPrefix(k, prefix+"{i:") && strings.HasSuffix(k, "}:m"):
			fl := make(map[string]float64, len(v.floats))
			for f, x := range v.floats {
				if f != "v" && f != "c" && f != "rl" && f != "nl" && f != "rp" && f != "np" {
					fl[f] = x
				}
			}
			v.floats = fl
		}
		out[k] = v
	}
	return out
}

func sortedKeys[V any](m map[int]V) []int {
	out := make([]int, 0, len(m))
	for k := range m {
		out = append(out, k)
	}
	sort.Ints(out)
	return out
}

// clusterCommitted is kafkatest's Committed returning errors (such as a
// group not formed yet) instead of failing the test.
func clusterCommitted(kf *kafkatest.Cluster, group, topic string, high map[int]int64) (map[int]int64, error) {
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	ps := sortedKeys(high)
	cl := &kafka.Client{Addr: kafka.TCP(kf.Brokers...), Timeout: 10 * time.Second}
	res, err := cl.OffsetFetch(ctx, &kafka.OffsetFetchRequest{GroupID: group, Topics: map[string][]int{topic: ps}})
	if err == nil {
		err = res.Error
	}
	if err != nil {
		return nil, err
	}
	out := map[int]int64{}
	for _, p := range res.Topics[topic] {
		if p.Error != nil {
			return nil, p.Error
		}
		if p.CommittedOffset >= 0 {
			out[p.Partition] = p.CommittedOffset
		}
	}
	return out, nil
}
