package processor_test

import (
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
)

// TestScalingIngest measures ingest throughput with 1, 2 and 4 processors
// (partitions = 2 × processors, ingest role only) on one Redis and on a
// three-master Redis Cluster. It is a measurement, not a check: it runs
// only with RECSTREAM_SCALING=1 (see docs/scaling.md):
//
//	RECSTREAM_SCALING=1 go test ./processor/ -run TestScalingIngest -v -timeout 20m
//
// Every processor runs roles ingest and items (item owners, the
// default); the time runs until the item owners committed every update
// too (their items written). RECSTREAM_SCALING_ITEM_SCRIPTS=1 runs the
// ingest role alone with ingest.item_owner false (the item scripts).
func TestScalingIngest(t *testing.T) {
	if os.Getenv("RECSTREAM_SCALING") == "" {
		t.Skip("measurement; set RECSTREAM_SCALING=1 to run")
	}
	n := 60000
	if s := os.Getenv("RECSTREAM_SCALING_EVENTS"); s != "" {
		fmt.Sscan(s, &n)
	}
	gen := loadgen.New(loadgen.Options{Users: 20000, Items: 5000, Clusters: 10, Seed: 1})
	evs := make([]event.Event, n)
	for i := range evs {
		evs[i] = gen.Next()
	}
	var rows []string
	for _, redisMode := range []string{"standalone", "cluster"} {
		for _, procs := range []int{1, 2, 4} {
			parts := 2 * procs
			if only := os.Getenv("RECSTREAM_SCALING_ONLY"); only != "" && only != fmt.Sprintf("%s-%d", redisMode, procs) {
				continue
			}
			rate, cpu := measureIngest(t, redisMode, procs, parts, evs)
			rows = append(rows, fmt.Sprintf("| %s | %d | %d | %.0f | %.0f |", redisMode, procs, parts, rate, cpu))
		}
	}
	t.Logf("\n| redis | processors | partitions | events/s | Redis CPU ms / 1000 events |\n|---|---|---|---|---|\n%s", strings.Join(rows, "\n"))
}

func measureIngest(t *testing.T, redisMode string, procs, parts int, evs []event.Event) (eventsPerSecond, redisCPUms float64) {
	t.Helper()
	def := config.Default()
	kf := kafkatest.Start(t, parts, def.Topics()...)
	owners := os.Getenv("RECSTREAM_SCALING_ITEM_SCRIPTS") == ""
	var addrs []string
	var nodes []*redis.Client
	if redisMode == "cluster" {
		rc := redistest.StartCluster(t, 3)
		addrs = rc.Addrs
		for _, n := range rc.Nodes {
			nodes = append(nodes, n.Client(t))
		}
	} else {
		rs := redistest.Start(t)
		addrs = []string{rs.Addr}
		nodes = []*redis.Client{rs.Client(t)}
	}
	redisCPU := func() float64 {
		sum := 0.0
		for _, n := range nodes {
			info := n.Info(context.Background(), "cpu").Val()
			for _, line := range strings.Split(info, "\n") {
				for _, f := range []string{"used_cpu_user:", "used_cpu_sys:"} {
					if v, ok := strings.CutPrefix(strings.TrimSpace(line), f); ok {
						x, _ := strconv.ParseFloat(v, 64)
						sum += x
					}
				}
			}
		}
		return sum
	}
	cfg := testConfig(kf.Brokers, addrs[0])
	cfg.Redis.Addrs = addrs
	cfg.Run.Roles = []string{config.RoleIngest}
	cfg.Ingest.ItemOwner = owners
	if owners {
		cfg.Run.Roles = append(cfg.Run.Roles, config.RoleItems)
	}
	cfg.Ingest.BatchMaxEvents = 2000
	cfg.Ingest.BatchMaxWait = 20 * time.Millisecond
	var ps []*processor.Processor
	var stops []func()
	for i := 0; i < procs; i++ {
		p, stop := runProcessor(t, cfg)
		ps = append(ps, p)
		stops = append(stops, stop)
	}
	defer func() {
		for _, s := range stops {
			s()
		}
	}()
	// Warm up until the group is stable: every processor has applied a
	// batch of its own partitions.
	warm := loadgen.New(loadgen.Options{Users: 5000, Items: 100, Seed: 99})
	waitFor(t, 60*time.Second, "every processor to own partitions", func() bool {
		var w []event.Event
		for k := 0; k < 20*parts; k++ {
			w = append(w, warm.Next())
		}
		produceEvents(t, kf, cfg.Kafka.EventsTopic, w)
		time.Sleep(300 * time.Millisecond)
		for _, p := range ps {
			if len(p.Ingest.Lag()) == 0 {
				return false
			}
		}
		return true
	})
	_, before := kf.Offsets(t, cfg.Kafka.EventsTopic)
	waitCommitted(t, kf, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic, 60*time.Second)
	if owners {
		waitCommitted(t, kf, cfg.Kafka.ItemOwnerGroup, cfg.Kafka.ItemUpdatesTopic, 60*time.Second)
	}
	var c0 int64
	for _, h := range before {
		c0 += h
	}
	cpu0 := redisCPU()
	t0 := time.Now()
	produceEvents(t, kf, cfg.Kafka.EventsTopic, evs)
	produced := time.Since(t0)
	_, high := kf.Offsets(t, cfg.Kafka.EventsTopic)
	var total int64
	for _, h := range high {
		total += h
	}
	committed := func() int64 {
		var c int64
		offs, _ := clusterCommitted(kf, cfg.Kafka.IngestGroup, cfg.Kafka.EventsTopic, high)
		for _, v := range offs {
			c += v
		}
		return c
	}
	deadline := time.Now().Add(5 * time.Minute)
	for committed() < total {
		if time.Now().After(deadline) {
			t.Fatalf("%s, %d processors: not all committed after 5 minutes", redisMode, procs)
		}
		time.Sleep(10 * time.Millisecond)
	}
	if owners {
		waitCommitted(t, kf, cfg.Kafka.ItemOwnerGroup, cfg.Kafka.ItemUpdatesTopic, 5*time.Minute)
	}
	t.Logf("producing took %s", produced.Round(time.Millisecond))
	rate := float64(total-c0) / time.Since(t0).Seconds()
	_ = len(evs)
	cpuMS := (redisCPU() - cpu0) * 1000 / float64(total-c0) * 1000
	t.Logf("%s redis, %d processors, %d partitions: %d events, %.0f events/s, Redis CPU %.1f ms per 1000 events (all nodes)", redisMode, procs, parts, total-c0, rate, cpuMS)
	return rate, cpuMS
}
