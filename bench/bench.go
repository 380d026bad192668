package bench

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"os"
	"os/exec"
	"path/filepath"
	"regexp"
	"runtime"
	"runtime/pprof"
	"slices"
	"sort"
	"strconv"
	"strings"
	"sync"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	dto "github.com/prometheus/client_model/go"
	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"
	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/loadgen"
	"github.com/recstream/recstream/processor"
)

// Options configures a run. Zero values take the defaults of Defaults (or
// of QuickDefaults when Quick is set).
type Options struct {
	Users        int           // synthetic users
	Items        int           // synthetic items
	Events       int           // events of the ingest phase
	Rate         float64       // offered events/s of the freshness phase
	Duration     time.Duration // length of the freshness phase
	Partitions   int           // partitions of every topic
	RescoreUsers int           // users scored in the rescore phase
	HSETRequests int           // requests of the redis-benchmark yardstick
	Quick        bool          // small sizes for a smoke test
	ProfileDir   string        // write CPU profiles per phase and a heap profile here
	Seed         uint64
	// Config is the processor configuration to start from (nil: defaults);
	// the benchmark sets brokers, Redis address, topics and admin on it.
	Config *config.Config
	// ProcessorBinary is the recstream binary; when set, a last phase runs
	// `recstream run` from it as a child process over the ingest phase's
	// events and reports its peak RSS without the broker.
	ProcessorBinary string
	// EASESolver is the benchmark's processors' EASE solver, as `recstream
	// run` gives its own (processor.Deps.EASESolver); nil: in process.
	EASESolver func(ctx context.Context, req []byte) ([]byte, error)
	Logger     *slog.Logger       // progress; nil discards
	Progress   func(phase string) // called as each phase starts; may be nil
}

// Defaults are the sizes of a full run: the 100,000 users, 50,000
// items and 3,000 events/s offered.
func Defaults() Options {
	return Options{Users: 100000, Items: 50000, Events: 500000, Rate: 3000, Duration: 20 * time.Second,
		Partitions: 8, RescoreUsers: 20000, HSETRequests: 1000000, Seed: 1}
}

// QuickDefaults are the sizes of a smoke test (a few seconds).
func QuickDefaults() Options {
	return Options{Users: 2000, Items: 1000, Events: 20000, Rate: 500, Duration: 3 * time.Second,
		Partitions: 4, RescoreUsers: 1000, HSETRequests: 50000, Seed: 1}
}

func (o *Options) setDefaults() {
	d := Defaults()
	if o.Quick {
		d = QuickDefaults()
	}
	def := func(v *int, x int) {
		if *v <= 0 {
			*v = x
		}
	}
	def(&o.Users, d.Users)
	def(&o.Items, d.Items)
	def(&o.Events, d.Events)
	def(&o.Partitions, d.Partitions)
	def(&o.RescoreUsers, d.RescoreUsers)
	def(&o.HSETRequests, d.HSETRequests)
	if o.Rate <= 0 {
		o.Rate = d.Rate
	}
	if o.Duration <= 0 {
		o.Duration = d.Duration
	}
	if o.Seed == 0 {
		o.Seed = d.Seed
	}
	if o.Logger == nil {
		o.Logger = slog.New(slog.DiscardHandler)
	}
	if o.Progress == nil {
		o.Progress = func(string) {}
	}
}

// Result is everything one run measured. JSON field names are stable.
type Result struct {
	Machine   Machine         `json:"machine"`
	Params    Params          `json:"params"`
	Ingest    IngestResult    `json:"ingest"`
	Rescore   RescoreResult   `json:"rescore"`
	Freshness FreshnessResult `json:"freshness"`
	Memory    MemoryResult    `json:"memory"`
	HSET      HSETResult      `json:"redis_benchmark_hset"`
}

// Machine describes where the run happened.
type Machine struct {
	CPUs         int    `json:"cpus"`
	CPUModel     string `json:"cpu_model"`
	GoVersion    string `json:"go_version"`
	RedisVersion string `json:"redis_version"`
	// ScriptCallsCounted says whether INFO commandstats counts the commands
	// Lua scripts run (checked with a probe script).
	ScriptCallsCounted bool `json:"script_calls_counted"`
}

// Params are the effective sizes and the settings that matter most.
type Params struct {
	Users          int     `json:"users"`
	Items          int     `json:"items"`
	Events         int     `json:"events"`
	Rate           float64 `json:"rate"`
	DurationS      float64 `json:"duration_s"`
	Partitions     int     `json:"partitions"`
	RescoreUsers   int     `json:"rescore_users"`
	BatchMaxEvents int     `json:"batch_max_events"`
	ScorerWorkers  int     `json:"scorer_workers"`
	ChunkUsers     int     `json:"chunk_users"`
	Quick          bool    `json:"quick"`
}

// IngestResult is the sustained-ingest phase.
type IngestResult struct {
	Events                 int              `json:"events"`
	Seconds                float64          `json:"seconds"`
	EventsPerSec           float64          `json:"events_per_s"`
	ClientCmdsPerEvent     float64          `json:"client_cmds_per_event"`       // EVALSHA etc. sent by the processor
	RedisCmdsPerEvent      float64          `json:"redis_cmds_per_event"`        // INFO commandstats total, script calls included
	RedisCPUUsPerEvent     float64          `json:"redis_cpu_us_per_event"`      // used_cpu_user+sys
	ProcessCPUUsPerEvent   float64          `json:"process_cpu_us_per_event"`    // whole process, embedded broker included
	KafkaOnlyCPUUsPerEvent float64          `json:"kafka_only_cpu_us_per_event"` // a fetch-only pass over the same events
	Users                  int              `json:"users"`                       // users with state afterwards
	Items                  int              `json:"items"`                       // items with state afterwards
	Commands               map[string]int64 `json:"commands"`                    // commandstats deltas by command
	CommandsUsec           map[string]int64 `json:"commands_usec"`               // µs Redis spent inside each (a script's include its commands')
}

// RescoreResult is the rescoring phase.
type RescoreResult struct {
	Users               int              `json:"users"`
	Seconds             float64          `json:"seconds"`
	UsersPerSec         float64          `json:"users_per_s"`
	ClientCmdsPerUser   float64          `json:"client_cmds_per_user"`
	RedisCmdsPerUser    float64          `json:"redis_cmds_per_user"`
	RedisCPUUsPerUser   float64          `json:"redis_cpu_us_per_user"`
	ProcessCPUUsPerUser float64          `json:"process_cpu_us_per_user"`
	EmptyLists          int              `json:"empty_lists"`
	EASEItems           int              `json:"ease_items"`     // items of the EASE model the scorer used (0: the source is off)
	EASERefreshSec      float64          `json:"ease_refresh_s"` // its refresh before the phase: read every user vector, solve
	Commands            map[string]int64 `json:"commands"`
	CommandsUsec        map[string]int64 `json:"commands_usec"`
}

// FreshnessResult is the steady-load phase with both roles running.
type FreshnessResult struct {
	OfferedPerSec  float64 `json:"offered_per_s"`
	ProducedPerSec float64 `json:"produced_per_s"`
	Seconds        float64 `json:"seconds"`
	Samples        int     `json:"samples"`
	P50Ms          float64 `json:"p50_ms"`
	P99Ms          float64 `json:"p99_ms"`
	P999Ms         float64 `json:"p999_ms"`
	MaxMs          float64 `json:"max_ms"`
	ListsPerSec    float64 `json:"lists_per_s"`
	ProcessCPU     float64 `json:"process_cpu_cores"` // CPU seconds per second
	RedisCPU       float64 `json:"redis_cpu_cores"`
}

// MemoryResult is Redis and process memory.
type MemoryResult struct {
	UsedMemoryDelta     int64   `json:"used_memory_delta_bytes"` // after ingest minus empty
	PerUserAll          float64 `json:"used_memory_per_user_bytes"`
	UserStateBytes      float64 `json:"user_state_bytes"` // MEMORY USAGE sample mean: s, m
	UserStateP99Bytes   float64 `json:"user_state_p99_bytes"`
	UserListBytes       float64 `json:"user_list_bytes"`  // MEMORY USAGE of written lists
	ItemStateBytes      float64 `json:"item_state_bytes"` // MEMORY USAGE sample mean: u, co, m
	ItemStateP99Bytes   float64 `json:"item_state_p99_bytes"`
	EventsPerUser       float64 `json:"events_per_user"`
	ProcessPeakRSSBytes int64   `json:"process_peak_rss_bytes"` // VmHWM, embedded broker included
	ProcessHeapBytes    int64   `json:"process_heap_inuse_bytes"`
	// Processor is `recstream run` alone in its own process (no broker);
	// nil when Options.ProcessorBinary is empty.
	Processor *ProcessorRSS `json:"processor,omitempty"`
}

// HSETResult is redis-benchmark's pipelined HSET rate and the ratio of each
// throughput to it.
type HSETResult struct {
	Command      string  `json:"command"`
	OpsPerSec    float64 `json:"ops_per_s"`
	IngestRatio  float64 `json:"ingest_ratio"`
	RescoreRatio float64 `json:"rescore_ratio"`
	Unavailable  string  `json:"unavailable,omitempty"`
}

// Topic names of the freshness phase: separate from the ingest phase's, so
// its refresh backlog does not delay the live load.
const (
	liveEvents  = "bench.events.live"
	liveRefresh = "bench.refresh.live"
	liveItems   = "bench.item-updates.live"
	chunkUsers  = 64 // users per scorer round trip, as the score consumer
)

// Run runs every phase and returns the measurements.
func Run(ctx context.Context, opt Options) (*Result, error) {
	opt.setDefaults()
	res := &Result{Machine: Machine{CPUs: runtime.NumCPU(), CPUModel: cpuModel(), GoVersion: runtime.Version()}}

	base := config.Default()
	if opt.Config != nil {
		base = *opt.Config
	}
	topics := []string{base.Kafka.EventsTopic, base.Kafka.DLQTopic, base.Kafka.RefreshTopic, base.Kafka.ItemsTopic, base.Kafka.ItemUpdatesTopic, liveEvents, liveRefresh, liveItems, rssRefresh, rssItems}
	kf, err := embedded.StartKafka(opt.Partitions, topics...)
	if err != nil {
		return nil, err
	}
	defer kf.Close()
	rs, err := embedded.StartRedisServer(ctx)
	if err != nil {
		return nil, fmt.Errorf("the benchmark needs redis-server on PATH: %w", err)
	}
	defer rs.Close()
	admin := redis.NewClient(&redis.Options{Addr: rs.Addr})
	defer admin.Close()

	srv, err := info(ctx, admin, "server")
	if err != nil {
		return nil, err
	}
	res.Machine.RedisVersion = srv["redis_version"]
	if res.Machine.ScriptCallsCounted, err = scriptCallsCounted(ctx, admin); err != nil {
		return nil, err
	}
	cfg, err := benchConfig(base, kf.Brokers, rs.Addr)
	if err != nil {
		return nil, err
	}
	res.Params = Params{Users: opt.Users, Items: opt.Items, Events: opt.Events, Rate: opt.Rate, DurationS: opt.Duration.Seconds(),
		Partitions: opt.Partitions, RescoreUsers: opt.RescoreUsers, BatchMaxEvents: cfg.Ingest.BatchMaxEvents,
		ScorerWorkers: cfg.Scorer.Workers, ChunkUsers: chunkUsers, Quick: opt.Quick}

	b := &benchRun{opt: opt, cfg: cfg, admin: admin, brokers: kf.Brokers, res: res, prof: profiler{dir: opt.ProfileDir}}
	for _, phase := range []func(context.Context) error{b.ingest, b.rescore, b.freshness, b.processMemory, b.processorRSS} {
		if err := phase(ctx); err != nil {
			return nil, err
		}
	}
	// Phase 5: the yardstick.
	opt.Progress("redis-benchmark")
	res.HSET = redisBenchmark(ctx, rs.Addr, opt.HSETRequests)
	if res.HSET.OpsPerSec > 0 {
		res.HSET.IngestRatio = res.Ingest.EventsPerSec / res.HSET.OpsPerSec
		res.HSET.RescoreRatio = res.Rescore.UsersPerSec / res.HSET.OpsPerSec
	}
	opt.Logger.Info("bench done")
	return res, nil
}

// benchConfig is the processor configuration the phases run with: base on
// the benchmark's broker and Redis.
func benchConfig(base config.Config, brokers []string, redisAddr string) (config.Config, error) {
	cfg := base
	cfg.Kafka.Brokers = brokers
	cfg.Kafka.CreateTopics = false
	cfg.Kafka.MaxWait = 50 * time.Millisecond
	cfg.Redis.Addrs = []string{redisAddr}
	cfg.Admin.Listen = ""
	cfg.Log.Level = "warn"
	// The rescore phase calls the scorer directly, without the score
	// consumer's retries: give a loaded machine time rather than fail.
	cfg.Redis.ReadTimeout = max(cfg.Redis.ReadTimeout, 30*time.Second)
	cfg.Redis.WriteTimeout = max(cfg.Redis.WriteTimeout, 30*time.Second)
	return cfg, cfg.Validate()
}

// benchRun is one benchmark run: its phases fill res in order.
type benchRun struct {
	opt     Options
	cfg     config.Config
	admin   *redis.Client
	brokers []string
	res     *Result
	prof    profiler
}

// ingest is phase 1 (ingest throughput) and the part of phase 4 that
// measures the memory of the state it built.
func (b *benchRun) ingest(ctx context.Context) error {
	opt, cfg, res := b.opt, b.cfg, b.res
	empty, err := takeSnapshot(ctx, b.admin, nil)
	if err != nil {
		return err
	}
	opt.Progress("producing")
	gen := loadgen.New(loadgen.Options{Users: opt.Users, Items: opt.Items, Clusters: 10, Seed: opt.Seed,
		Start: time.Now().Add(-time.Duration(opt.Events) * time.Millisecond).Add(-time.Minute), Step: time.Millisecond})
	if err := produceN(ctx, b.brokers, cfg.Kafka.EventsTopic, gen, opt.Events); err != nil {
		return err
	}
	opt.Progress("kafka-only pass")
	kcpu, err := fetchOnly(ctx, b.brokers, cfg.Kafka.EventsTopic, opt.Events)
	if err != nil {
		return err
	}
	res.Ingest.KafkaOnlyCPUUsPerEvent = kcpu * 1e6 / float64(opt.Events)
	opt.Progress("ingest")
	if err := b.prof.start("ingest"); err != nil {
		return err
	}
	if err := runIngest(ctx, cfg, b.admin, opt.Events, &res.Ingest); err != nil {
		return err
	}
	b.prof.stop()
	afterIngest, err := takeSnapshot(ctx, b.admin, nil)
	if err != nil {
		return err
	}
	opt.Progress("memory")
	if err := measureMemory(ctx, b.admin, cfg, &res.Memory, &res.Ingest); err != nil {
		return err
	}
	res.Memory.UsedMemoryDelta = afterIngest.memory - empty.memory
	if res.Ingest.Users > 0 {
		res.Memory.PerUserAll = float64(res.Memory.UsedMemoryDelta) / float64(res.Ingest.Users)
		res.Memory.EventsPerUser = float64(opt.Events) / float64(res.Ingest.Users)
	}
	return nil
}

// rescore is phase 2: rescoring throughput, then the size of the lists.
func (b *benchRun) rescore(ctx context.Context) error {
	b.opt.Progress("rescore")
	if err := b.prof.start("rescore"); err != nil {
		return err
	}
	if err := runRescore(ctx, b.cfg, b.opt.EASESolver, b.admin, b.opt.RescoreUsers, &b.res.Rescore); err != nil {
		return err
	}
	b.prof.stop()
	return measureLists(ctx, b.admin, b.cfg, b.opt.RescoreUsers, &b.res.Memory)
}

// freshness is phase 3: freshness at a fixed offered load, on topics and
// groups of its own.
func (b *benchRun) freshness(ctx context.Context) error {
	b.opt.Progress("freshness")
	if err := b.prof.start("freshness"); err != nil {
		return err
	}
	live := b.cfg
	live.Kafka.EventsTopic = liveEvents
	live.Kafka.RefreshTopic = liveRefresh
	live.Kafka.IngestGroup = "bench-live-ingest"
	live.Kafka.ScoreGroup = "bench-live-score"
	live.Kafka.ItemOwnerGroup = "bench-live-items"
	live.Kafka.ItemUpdatesTopic = liveItems
	if err := runFreshness(ctx, live, b.admin, b.opt, &b.res.Freshness); err != nil {
		return err
	}
	b.prof.stop()
	return nil
}

// processMemory records this process's peak RSS and heap after the
// phases (part of phase 4).
func (b *benchRun) processMemory(context.Context) error {
	b.res.Memory.ProcessPeakRSSBytes = procStatus("VmHWM")
	var ms runtime.MemStats
	runtime.ReadMemStats(&ms)
	b.res.Memory.ProcessHeapBytes = int64(ms.HeapInuse)
	return b.prof.heap()
}

// processorRSS is the part of phase 4 that runs the processor alone, in
// its own process (only with Options.ProcessorBinary).
func (b *benchRun) processorRSS(ctx context.Context) error {
	if b.opt.ProcessorBinary == "" {
		return nil
	}
	b.opt.Progress("processor RSS")
	b.res.Memory.Processor = &ProcessorRSS{}
	return runProcessorRSS(ctx, b.opt.ProcessorBinary, b.cfg, b.opt.Events, b.res.Memory.Processor)
}

// produceN publishes n generated events (msgpack, keyed by user).
func produceN(ctx context.Context, brokers []string, topic string, gen *loadgen.Generator, n int) error {
	w := consumer.Kafka{Brokers: brokers}.NewWriter()
	w.Topic = topic
	defer w.Close()
	const batch = 5000
	msgs := make([]kafka.Message, 0, batch)
	for sent := 0; sent < n; {
		msgs = msgs[:0]
		for len(msgs) < batch && sent+len(msgs) < n {
			ev := gen.Next()
			b, err := event.Encode(ev)
			if err != nil {
				return err
			}
			msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
		}
		if err := w.WriteMessages(ctx, msgs...); err != nil {
			return fmt.Errorf("producing: %w", err)
		}
		sent += len(msgs)
	}
	return nil
}

// fetchOnly consumes n messages of topic in a group of its own without doing
// anything with them and returns the process CPU seconds it took: the cost of
// the Kafka client and the embedded broker alone.
func fetchOnly(ctx context.Context, brokers []string, topic string, n int) (float64, error) {
	r := kafka.NewReader(kafka.ReaderConfig{Brokers: brokers, GroupID: "bench-fetch-only", Topic: topic,
		MinBytes: 1, MaxBytes: 16 << 20, MaxWait: 50 * time.Millisecond, QueueCapacity: 4000, StartOffset: kafka.FirstOffset,
		SessionTimeout: 6 * time.Second, JoinGroupBackoff: 200 * time.Millisecond})
	defer r.Close()
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	m, err := r.FetchMessage(cctx)
	if err != nil {
		return 0, fmt.Errorf("fetch-only pass: %w", err)
	}
	c0 := processCPU()
	for i := 1; i < n; i++ {
		if m, err = r.FetchMessage(cctx); err != nil {
			return 0, fmt.Errorf("fetch-only pass: %w", err)
		}
	}
	_ = m
	return processCPU() - c0, nil
}

// counterSum adds up every series of a counter collector.
func counterSum(c prometheus.Collector) float64 {
	ch := make(chan prometheus.Metric, 64)
	go func() { c.Collect(ch); close(ch) }()
	var s float64
	for m := range ch {
		var d dto.Metric
		if m.Write(&d) == nil && d.Counter != nil {
			s += d.Counter.GetValue()
		}
	}
	return s
}

type running struct {
	p      *processor.Processor
	client *cmdCounter
	cancel context.CancelFunc
	done   chan error
}

func start(ctx context.Context, cfg config.Config, roles []string, solver func(context.Context, []byte) ([]byte, error), prepare func(*processor.Processor)) (*running, error) {
	cfg.Run.Roles = withItemOwner(cfg, roles)
	p, err := processor.New(cfg, processor.Deps{Registerer: prometheus.NewRegistry(), EASESolver: solver})
	if err != nil {
		return nil, err
	}
	cc := &cmdCounter{}
	p.Redis.AddHook(cc)
	if prepare != nil {
		prepare(p)
	}
	rctx, cancel := context.WithCancel(ctx)
	r := &running{p: p, client: cc, cancel: cancel, done: make(chan error, 1)}
	go func() { r.done <- p.Run(rctx) }()
	return r, nil
}

func (r *running) stop() error {
	r.cancel()
	err := <-r.done
	if errors.Is(err, context.Canceled) {
		err = nil
	}
	return err
}

// withItemOwner returns roles with the item owner added when the ingest
// role runs with ingest.item_owner: the item half is written by it.
func withItemOwner(cfg config.Config, roles []string) []string {
	if cfg.Ingest.ItemOwner && slices.Contains(roles, config.RoleIngest) && !slices.Contains(roles, config.RoleItems) {
		return append(slices.Clone(roles), config.RoleItems)
	}
	return roles
}

func runIngest(ctx context.Context, cfg config.Config, admin *redis.Client, n int, out *IngestResult) error {
	r, err := start(ctx, cfg, []string{config.RoleIngest}, nil, nil)
	if err != nil {
		return err
	}
	// Consumed: applied, item half written (the item window closed; with
	// item owners, every update sent written by the item owner too).
	consumed := func() int {
		c := int(counterSum(r.p.Metrics.ItemEvents) + counterSum(r.p.Metrics.Invalid))
		if cfg.Ingest.ItemOwner && c >= n {
			u := r.p.Metrics.ItemUpdates
			if counterSum(u.WithLabelValues("written")) < counterSum(u.WithLabelValues("sent")) {
				return n - 1
			}
		}
		return c
	}
	deadline := time.Now().Add(30 * time.Minute)
	var before snapshot
	first := 0
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	for {
		select {
		case <-ctx.Done():
			_ = r.stop()
			return ctx.Err()
		case err := <-r.done:
			return fmt.Errorf("ingest stopped early: %v", err)
		case <-tick.C:
		}
		c := consumed()
		if first == 0 && c > 0 {
			first = c
			if before, err = takeSnapshot(ctx, admin, r.client); err != nil {
				_ = r.stop()
				return err
			}
		}
		if c >= n {
			break
		}
		if time.Now().After(deadline) {
			_ = r.stop()
			return fmt.Errorf("ingest: %d of %d events after 30 minutes", c, n)
		}
	}
	after, err := takeSnapshot(ctx, admin, r.client)
	if err != nil {
		_ = r.stop()
		return err
	}
	if err := r.stop(); err != nil {
		return err
	}
	d := diff(before, after)
	ev := float64(n - first)
	if ev <= 0 {
		ev = float64(n)
	}
	*out = IngestResult{
		Events:                 n,
		Seconds:                d.wall.Seconds(),
		EventsPerSec:           ev / d.wall.Seconds(),
		ClientCmdsPerEvent:     float64(d.client) / ev,
		RedisCmdsPerEvent:      float64(d.total) / ev,
		RedisCPUUsPerEvent:     d.redisCPU * 1e6 / ev,
		ProcessCPUUsPerEvent:   d.procCPU * 1e6 / ev,
		KafkaOnlyCPUUsPerEvent: out.KafkaOnlyCPUUsPerEvent,
		Commands:               d.calls,
		CommandsUsec:           d.usec,
	}
	return nil
}

func runRescore(ctx context.Context, cfg config.Config, solver func(context.Context, []byte) ([]byte, error), admin *redis.Client, n int, out *RescoreResult) error {
	cfg.Run.Roles = []string{config.RoleScore}
	p, err := processor.New(cfg, processor.Deps{Registerer: prometheus.NewRegistry(), EASESolver: solver})
	if err != nil {
		return err
	}
	defer p.Redis.Close()
	// The EASE source scores with a model refreshed from the ingested
	// users, as a running score role would hold it.
	var easeItems int
	var easeSec float64
	if p.EASE != nil {
		start := time.Now()
		if _, err := p.EASE.Update(ctx, p.Store, true); err != nil {
			return fmt.Errorf("ease refresh: %w", err)
		}
		easeItems, easeSec = p.EASE.Items(), time.Since(start).Seconds()
	}
	cc := &cmdCounter{}
	p.Redis.AddHook(cc)
	users := make([]string, n)
	for i := range users {
		users[i] = loadgen.UserID(i)
	}
	// Warm the connection pool and the trending read outside the window.
	if _, err := p.Scorer.Recommend(ctx, users[:1]); err != nil {
		return err
	}
	before, err := takeSnapshot(ctx, admin, cc)
	if err != nil {
		return err
	}
	var mu sync.Mutex
	emptyLists := 0
	g, gctx := errgroup.WithContext(ctx)
	g.SetLimit(max(1, cfg.Scorer.Workers))
	for i := 0; i < n; i += chunkUsers {
		chunk := users[i:min(i+chunkUsers, n)]
		g.Go(func() error {
			lists, err := p.Scorer.Refresh(gctx, chunk)
			e := 0
			for _, l := range lists {
				if len(l.Items) == 0 {
					e++
				}
			}
			mu.Lock()
			emptyLists += e
			mu.Unlock()
			return err
		})
	}
	if err := g.Wait(); err != nil {
		return fmt.Errorf("rescoring: %w", err)
	}
	after, err := takeSnapshot(ctx, admin, cc)
	if err != nil {
		return err
	}
	d := diff(before, after)
	u := float64(n)
	*out = RescoreResult{
		Users:               n,
		Seconds:             d.wall.Seconds(),
		UsersPerSec:         u / d.wall.Seconds(),
		ClientCmdsPerUser:   float64(d.client) / u,
		RedisCmdsPerUser:    float64(d.total) / u,
		RedisCPUUsPerUser:   d.redisCPU * 1e6 / u,
		ProcessCPUUsPerUser: d.procCPU * 1e6 / u,
		EmptyLists:          emptyLists,
		EASEItems:           easeItems,
		EASERefreshSec:      easeSec,
		Commands:            d.calls,
		CommandsUsec:        d.usec,
	}
	return nil
}

// freshnessRecorder keeps every freshness observation of the score consumer
// while recording is on, besides feeding the Prometheus histogram.
type freshnessRecorder struct {
	prometheus.Histogram
	mu sync.Mutex
	on bool
	xs []float64
}

func (f *freshnessRecorder) Observe(v float64) {
	f.Histogram.Observe(v)
	f.mu.Lock()
	if f.on {
		f.xs = append(f.xs, v)
	}
	f.mu.Unlock()
}

func (f *freshnessRecorder) record(on bool) {
	f.mu.Lock()
	f.on = on
	f.mu.Unlock()
}

func runFreshness(ctx context.Context, cfg config.Config, admin *redis.Client, opt Options, out *FreshnessResult) error {
	rec := &freshnessRecorder{}
	r, err := start(ctx, cfg, []string{config.RoleIngest, config.RoleScore}, opt.EASESolver, func(p *processor.Processor) {
		rec.Histogram = p.Metrics.Freshness
		p.Metrics.Freshness = rec
	})
	if err != nil {
		return err
	}
	defer func() { _ = r.stop() }()
	w := consumer.Kafka{Brokers: cfg.Kafka.Brokers}.NewWriter()
	w.Topic = cfg.Kafka.EventsTopic
	defer w.Close()
	gen := loadgen.New(loadgen.Options{Users: opt.Users, Items: opt.Items, Clusters: 10, Seed: opt.Seed + 1})

	// Produce every 10 ms the events due by then, timestamped when made.
	warm := min(2*time.Second, opt.Duration/4)
	total := warm + opt.Duration
	var before snapshot
	startAt := time.Now()
	sent, sentAtStart := 0, 0
	recording := false
	tick := time.NewTicker(10 * time.Millisecond)
	defer tick.Stop()
	var msgs []kafka.Message
	for {
		select {
		case <-ctx.Done():
			return ctx.Err()
		case err := <-r.done:
			return fmt.Errorf("processor stopped early: %v", err)
		case <-tick.C:
		}
		el := time.Since(startAt)
		if el >= total {
			break
		}
		if !recording && el >= warm {
			recording = true
			rec.record(true)
			sentAtStart = sent
			if before, err = takeSnapshot(ctx, admin, r.client); err != nil {
				return err
			}
			before.procCPU = processCPU()
		}
		due := int(el.Seconds() * opt.Rate)
		msgs = msgs[:0]
		for sent+len(msgs) < due {
			ev := gen.Next()
			b, err := event.Encode(ev)
			if err != nil {
				return err
			}
			msgs = append(msgs, kafka.Message{Key: []byte(ev.UserID), Value: b})
		}
		if len(msgs) > 0 {
			if err := w.WriteMessages(ctx, msgs...); err != nil {
				return fmt.Errorf("producing: %w", err)
			}
			sent += len(msgs)
		}
	}
	after, err := takeSnapshot(ctx, admin, r.client)
	if err != nil {
		return err
	}
	// Let the requests in flight finish, then stop recording.
	time.Sleep(time.Second)
	rec.record(false)
	d := diff(before, after)
	rec.mu.Lock()
	xs := append([]float64(nil), rec.xs...)
	rec.mu.Unlock()
	sort.Float64s(xs)
	secs := d.wall.Seconds()
	*out = FreshnessResult{
		OfferedPerSec:  opt.Rate,
		ProducedPerSec: float64(sent-sentAtStart) / secs,
		Seconds:        secs,
		Samples:        len(xs),
		P50Ms:          quantile(xs, 0.50) * 1000,
		P99Ms:          quantile(xs, 0.99) * 1000,
		P999Ms:         quantile(xs, 0.999) * 1000,
		ListsPerSec:    float64(len(xs)) / secs,
		ProcessCPU:     d.procCPU / secs,
		RedisCPU:       d.redisCPU / secs,
	}
	if len(xs) > 0 {
		out.MaxMs = xs[len(xs)-1] * 1000
	}
	return nil
}

// quantile returns the q-quantile of sorted xs (nearest rank).
func quantile(xs []float64, q float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	i := int(q*float64(len(xs))+0.5) - 1
	return xs[max(0, min(i, len(xs)-1))]
}

// scanKeys returns the keys matching pattern.
func scanKeys(ctx context.Context, rdb *redis.Client, pattern string) ([]string, error) {
	var out []string
	it := rdb.Scan(ctx, 0, pattern, 5000).Iterator()
	for it.Next(ctx) {
		out = append(out, it.Val())
	}
	return out, it.Err()
}

// idOf extracts the id of "<prefix>{u:<id>}:m".
func idOf(key, tag string) string {
	i := strings.Index(key, "{"+tag+":")
	j := strings.LastIndex(key, "}")
	if i < 0 || j < i {
		return ""
	}
	return key[i+len(tag)+2 : j]
}

const memorySample = 500

// groupBytes returns MEMORY USAGE (SAMPLES 0: exact) summed over keys, per
// group, for up to memorySample groups spread evenly over ids.
func groupBytes(ctx context.Context, rdb *redis.Client, ids []string, keys func(string) []string) ([]float64, error) {
	step := max(1, len(ids)/memorySample)
	pipe := rdb.Pipeline()
	var cmds [][]*redis.IntCmd
	for i := 0; i < len(ids); i += step {
		var cs []*redis.IntCmd
		for _, k := range keys(ids[i]) {
			cs = append(cs, pipe.MemoryUsage(ctx, k, 0))
		}
		cmds = append(cmds, cs)
	}
	if _, err := pipe.Exec(ctx); err != nil && !errors.Is(err, redis.Nil) {
		return nil, fmt.Errorf("MEMORY USAGE: %w", err)
	}
	out := make([]float64, len(cmds))
	for i, cs := range cmds {
		for _, c := range cs {
			out[i] += float64(c.Val()) // 0 for a missing key
		}
	}
	sort.Float64s(out)
	return out, nil
}

func mean(xs []float64) float64 {
	if len(xs) == 0 {
		return 0
	}
	s := 0.0
	for _, x := range xs {
		s += x
	}
	return s / float64(len(xs))
}

func measureMemory(ctx context.Context, admin *redis.Client, cfg config.Config, m *MemoryResult, in *IngestResult) error {
	k := processorKeys(cfg)
	users, err := scanKeys(ctx, admin, cfg.Redis.KeyPrefix+"{u:*}:m")
	if err != nil {
		return err
	}
	items, err := scanKeys(ctx, admin, cfg.Redis.KeyPrefix+"{i:*}:m")
	if err != nil {
		return err
	}
	in.Users, in.Items = len(users), len(items)
	uids := make([]string, len(users))
	for i, key := range users {
		uids[i] = idOf(key, "u")
	}
	sort.Strings(uids)
	iids := make([]string, len(items))
	for i, key := range items {
		iids[i] = idOf(key, "i")
	}
	sort.Strings(iids)
	ub, err := groupBytes(ctx, admin, uids, func(u string) []string {
		return []string{k.UserState(u), k.UserMeta(u)}
	})
	if err != nil {
		return err
	}
	ib, err := groupBytes(ctx, admin, iids, func(it string) []string {
		return []string{k.ItemUsers(it), k.ItemCooc(it), k.ItemMeta(it), k.ItemNext(it)}
	})
	if err != nil {
		return err
	}
	m.UserStateBytes, m.UserStateP99Bytes = mean(ub), quantile(ub, 0.99)
	m.ItemStateBytes, m.ItemStateP99Bytes = mean(ib), quantile(ib, 0.99)
	return nil
}

func measureLists(ctx context.Context, admin *redis.Client, cfg config.Config, n int, m *MemoryResult) error {
	k := processorKeys(cfg)
	ids := make([]string, n)
	for i := range ids {
		ids[i] = loadgen.UserID(i)
	}
	lb, err := groupBytes(ctx, admin, ids, func(u string) []string { return []string{k.UserList(u)} })
	if err != nil {
		return err
	}
	m.UserListBytes = mean(lb)
	return nil
}

var hsetRe = regexp.MustCompile(`HSET:\s*([0-9.]+)\s*requests per second`)

// redisBenchmark runs redis-benchmark's pipelined HSET against addr.
func redisBenchmark(ctx context.Context, addr string, n int) HSETResult {
	host, port, _ := strings.Cut(addr, ":")
	args := []string{"-h", host, "-p", port, "-t", "hset", "-P", "16", "-q", "-n", strconv.Itoa(n)}
	res := HSETResult{Command: "redis-benchmark " + strings.Join(args, " ")}
	bin, err := exec.LookPath("redis-benchmark")
	if err != nil {
		res.Unavailable = err.Error()
		return res
	}
	cctx, cancel := context.WithTimeout(ctx, 5*time.Minute)
	defer cancel()
	b, err := exec.CommandContext(cctx, bin, args...).CombinedOutput()
	if err != nil {
		res.Unavailable = fmt.Sprintf("%v: %s", err, strings.TrimSpace(string(b)))
		return res
	}
	// -q prints progress lines separated by \r, then the final rate.
	txt := string(b)
	if i := strings.LastIndex(txt, "\r"); i >= 0 {
		txt = txt[i+1:]
	}
	mm := hsetRe.FindAllStringSubmatch(txt, -1)
	if len(mm) == 0 {
		res.Unavailable = "could not parse: " + strings.TrimSpace(txt)
		return res
	}
	res.OpsPerSec, _ = strconv.ParseFloat(mm[len(mm)-1][1], 64)
	return res
}

type profiler struct {
	dir string
	f   *os.File
}

func (p *profiler) start(phase string) error {
	if p.dir == "" {
		return nil
	}
	if err := os.MkdirAll(p.dir, 0o755); err != nil {
		return err
	}
	f, err := os.Create(filepath.Join(p.dir, phase+".cpu.pprof"))
	if err != nil {
		return err
	}
	if err := pprof.StartCPUProfile(f); err != nil {
		f.Close()
		return err
	}
	p.f = f
	return nil
}

func (p *profiler) stop() {
	if p.f == nil {
		return
	}
	pprof.StopCPUProfile()
	p.f.Close()
	p.f = nil
}

func (p *profiler) heap() error {
	if p.dir == "" {
		return nil
	}
	f, err := os.Create(filepath.Join(p.dir, "heap.pprof"))
	if err != nil {
		return err
	}
	defer f.Close()
	runtime.GC()
	return pprof.WriteHeapProfile(f)
}
