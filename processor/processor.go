// Package processor wires recstream's parts from a configuration: the Redis
// client and store, the scorer, the ingest and scoring consumers and the
// admin HTTP server. `recstream run`, the demo, the benchmark and the
// integration tests all build their pipeline here, so they run the same
// code.
package processor

import (
	"context"
	"errors"
	"fmt"
	"log/slog"
	"maps"
	"net"
	"net/http"
	"slices"
	"sync"
	"sync/atomic"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/prometheus/client_golang/prometheus/promhttp"
	"github.com/redis/go-redis/v9"
	"golang.org/x/sync/errgroup"

	"github.com/recstream/recstream/admin"
	"github.com/recstream/recstream/catalog"
	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/consumer"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/experiment"
	"github.com/recstream/recstream/internal/logx"
	"github.com/recstream/recstream/privacy"
	"github.com/recstream/recstream/scorer"
	"github.com/recstream/recstream/store"
)

// Deps are the process-wide dependencies injected into a Processor.
type Deps struct {
	Logger     *slog.Logger          // nil: discard
	Registerer prometheus.Registerer // nil: a private registry
	Gatherer   prometheus.Gatherer   // served at /metrics; nil: the private registry
	Now        func() time.Time
	Version    string // shown on the status page
	// EASESolver solves the EASE model's fits elsewhere (scorer.EASEOptions
	// .Solver); `recstream run` sets one that runs `recstream ease-solve`
	// as a child process at the lowest priority. nil: in this process.
	EASESolver func(ctx context.Context, req []byte) ([]byte, error)
}

// Processor is one recstream process: the roles its configuration selects.
type Processor struct {
	Config config.Config
	Redis  redis.UniversalClient
	Store  *store.Store
	Scorer *scorer.Scorer
	Ingest *consumer.Ingest // nil unless the ingest role runs
	Score  *consumer.Score  // nil unless the score role runs
	// Items is the item owner's consumer; nil unless the items role runs
	// with ingest.item_owner.
	Items   *consumer.ItemOwner
	EASE    *scorer.EASE // nil unless scorer.weights.ease > 0
	Metrics *consumer.Metrics
	Lag     *consumer.LagMonitor // polls lag of the running roles' groups
	// Control consumes kafka.control_topic (erasure requests); nil unless
	// the ingest role runs and the topic is set.
	Control *consumer.Control

	Catalog       *catalog.Index          // nil unless the score role runs with the catalog enabled
	CatalogLoader *consumer.CatalogLoader // fills Catalog
	CatalogWriter *consumer.CatalogWriter // nil unless the ingest role runs with the catalog enabled
	Variants      *scorer.Variants        // nil without scorer.variants

	version  string
	log      *slog.Logger
	gatherer prometheus.Gatherer
	admin    net.Listener
	kafka    consumer.Kafka
	pseudo   privacy.Pseudonymizer

	startPhase   atomic.Pointer[string] // what start-up waits for; "" once the roles run
	scoreStarted atomic.Bool            // the score role consumes (the catalog is loaded)
	dialErr      *dialErrors
	lastReady    atomic.Pointer[readyResult] // trackReadiness's last result
}

type readyResult struct {
	err error
	at  time.Time
}

// dialErrors is a go-redis hook that remembers the last failed dial to
// Redis until a dial succeeds. go-redis retries a refused dial for about
// 2 s before a command fails, longer than a readiness probe waits, so the
// probe names this error instead of its own timeout.
type dialErrors struct{ last atomic.Pointer[dialError] }

type dialError struct {
	err error
	at  time.Time
}

func (d *dialErrors) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			d.last.Store(&dialError{err, time.Now()})
		} else {
			d.last.Store(nil)
		}
		return c, err
	}
}

func (d *dialErrors) ProcessHook(next redis.ProcessHook) redis.ProcessHook { return next }

func (d *dialErrors) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return next
}

// since returns the last failed dial if it happened at or after t.
func (d *dialErrors) since(t time.Time) error {
	if e := d.last.Load(); e != nil && !e.at.Before(t) {
		return e.err
	}
	return nil
}

// NewRedis returns the Redis client the configuration describes: one node,
// a Cluster (several addresses) or Sentinel (master_name set; the sentinels
// are asked with sentinel_username/sentinel_password, the data nodes with
// username/password).
func NewRedis(c config.RedisConfig) redis.UniversalClient {
	tlsCfg, _ := TLSConfig(c.TLS) // New reports its error first
	return redis.NewUniversalClient(&redis.UniversalOptions{
		TLSConfig:        tlsCfg,
		Addrs:            c.Addrs,
		Username:         c.Username,
		Password:         c.Password,
		DB:               c.DB,
		MasterName:       c.MasterName,
		SentinelUsername: c.SentinelUsername,
		SentinelPassword: c.SentinelPassword,
		DialTimeout:      c.DialTimeout,
		ReadTimeout:      c.ReadTimeout,
		WriteTimeout:     c.WriteTimeout,
		PoolSize:         c.PoolSize,
		MaxRetries:       c.MaxRetries,
	})
}

// ExperimentReport reads the experiment counters and returns the A/B
// report, the first configured variant as the control.
func (p *Processor) ExperimentReport(ctx context.Context) (experiment.Report, error) {
	fields, err := p.Store.ReadExperiment(ctx)
	if err != nil {
		return experiment.Report{}, err
	}
	return experiment.NewReport(experiment.FromFields(fields, VariantNames(p.Config))), nil
}

// VariantNames returns the names of the configured A/B variants, in
// order (the first is the control); empty, not nil, without variants.
func VariantNames(c config.Config) []string {
	specs, _ := config.ParseVariants(c.Scorer.Variants)
	names := make([]string, 0, len(specs))
	for _, v := range specs {
		names = append(names, v.Name)
	}
	return names
}

// Decoder returns the event decoder the ingest role runs.
func Decoder(c config.Config) event.Decoder {
	return event.Decoder{MaxBytes: c.Ingest.MaxMessageBytes, MaxFuture: c.Ingest.MaxFuture, MaxItems: c.Attribution.MaxItems, Variants: VariantNames(c)}
}

// KafkaOptions maps the kafka section onto the consumers' shared settings.
func KafkaOptions(c config.Config) consumer.Kafka {
	return consumer.Kafka{
		Brokers:          c.Kafka.Brokers,
		ClientID:         c.Kafka.ClientID,
		SessionTimeout:   c.Kafka.SessionTimeout,
		RebalanceTimeout: c.Kafka.RebalanceTimeout,
		MaxWait:          c.Kafka.MaxWait,
		CloseTimeout:     closeShutdown(c.Run.ShutdownTimeout),
	}
}

// New builds a processor. It connects nothing yet; Run does.
func New(cfg config.Config, d Deps) (*Processor, error) {
	if err := cfg.Validate(); err != nil {
		return nil, err
	}
	if err := cfg.ResolveSecrets(); err != nil {
		return nil, err
	}
	if _, err := TLSConfig(cfg.Redis.TLS); err != nil {
		return nil, fmt.Errorf("redis.%w", err)
	}
	dialer, transport, err := kafkaSecurity(cfg.Kafka)
	if err != nil {
		return nil, err
	}
	log := d.Logger
	if log == nil {
		log = slog.New(slog.DiscardHandler)
	}
	reg, gat := d.Registerer, d.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		gat = prometheus.DefaultGatherer
	}
	p := &Processor{Config: cfg, Metrics: consumer.NewMetrics(reg), log: log, gatherer: gat, version: d.Version, pseudo: Pseudonymizer(cfg), dialErr: &dialErrors{}}
	b := &builder{
		p: p, cfg: cfg, reg: reg, now: d.Now, easeSolver: d.EASESolver,
		// Repeated warnings (a broker or Redis outage retried in a loop)
		// are written once per interval with a count of the suppressed
		// ones.
		rlog: slog.New(logx.RateLimit(log.Handler(), 10*time.Second)),
	}
	p.kafka = KafkaOptions(cfg)
	p.kafka.Dialer, p.kafka.Transport = dialer, transport
	p.kafka.Logger = b.rlog.With("role", "kafka")
	b.store()
	b.scorer()
	for _, step := range []func() error{b.variants, b.catalogWriter, b.ingest, b.items, b.score} {
		if err := step(); err != nil {
			return nil, err
		}
	}
	b.lag()
	return p, nil
}

// builder holds what New's steps share while they build a processor.
type builder struct {
	p    *Processor
	cfg  config.Config
	reg  prometheus.Registerer
	rlog *slog.Logger // rate-limited
	now  func() time.Time

	easeSolver func(ctx context.Context, req []byte) ([]byte, error) // Deps.EASESolver

	sco       scorer.Options           // the plain scorer's options, the variants' base
	cm        *consumer.CatalogMetrics // nil until a catalog role needs them
	refresher consumer.Refresher       // the scorer, or the variants
	watches   []consumer.LagWatch      // the running roles' groups

	itemMetrics *store.ItemOwnerMetrics // exported whether an item owner runs or not
}

// store builds the instrumented Redis client and the store, and registers
// the experiment collector when attribution is on.
func (b *builder) store() {
	p, cfg := b.p, b.cfg
	p.Redis = NewRedis(cfg.Redis)
	store.NewRedisMetrics(b.reg).InstrumentClient(p.Redis)
	p.Redis.AddHook(p.dialErr)
	so := store.OptionsFromConfig(cfg)
	so.Logger = p.log
	so.CoocMetrics = store.NewCoocMetrics(b.reg)
	so.UserMetrics = store.NewUserMetrics(b.reg)
	b.itemMetrics = store.NewItemOwnerMetrics(b.reg)
	p.Store = store.New(p.Redis, so)
	if cfg.Attribution.Window > 0 {
		b.reg.MustRegister(experiment.NewCollector(p.Store.ReadExperiment, VariantNames(cfg)))
	}
}

// scorer builds the EASE model (scorer.weights.ease > 0), the catalog
// index and its loader (score role with the catalog) and the scorer.
func (b *builder) scorer() {
	p, cfg := b.p, b.cfg
	sco := scorer.OptionsFromConfig(cfg)
	sco.Logger = p.log
	sco.Shown = p.Store.ShownCounts
	if b.now != nil {
		sco.Now = b.now
	}
	if cfg.Scorer.Weights.EASE > 0 {
		eo := scorer.EASEOptionsFromConfig(cfg)
		eo.Logger = p.log.With("model", "ease")
		eo.Solver = b.easeSolver
		p.EASE = scorer.NewEASE(eo)
		sco.EASE = p.EASE
	}
	if cfg.Catalog.Enabled && cfg.Run.Has(config.RoleScore) {
		b.cm = consumer.NewCatalogMetrics(b.reg)
		p.Catalog = catalog.NewIndex()
		sco.Catalog = p.Catalog
		for _, r := range []string{"ok", "invalid"} {
			b.cm.Records.WithLabelValues("index", r)
		}
		p.CatalogLoader = consumer.NewCatalogLoader(consumer.CatalogLoaderOptions{Kafka: p.kafka, Topic: cfg.Kafka.ItemsTopic, Metrics: b.cm, Logger: b.rlog.With("role", "catalog")}, p.Catalog)
	}
	p.Scorer = scorer.New(p.Store, sco)
	b.sco, b.refresher = sco, p.Scorer
}

// variants builds the A/B variants' scorers (scorer.variants), each the
// plain scorer with its own weights; they then refresh the lists.
func (b *builder) variants() error {
	p, cfg := b.p, b.cfg
	specs, _ := config.ParseVariants(cfg.Scorer.Variants)
	if len(specs) == 0 {
		return nil
	}
	vs := make([]scorer.Variant, len(specs))
	for i, spec := range specs {
		c := cfg
		c.Scorer.Weights = spec.Apply(cfg.Scorer.Weights)
		o := scorer.OptionsFromConfig(c)
		o.Logger, o.Catalog, o.Now, o.EASE = b.sco.Logger, b.sco.Catalog, b.sco.Now, b.sco.EASE
		vs[i] = scorer.Variant{Name: spec.Name, Share: spec.Share, Scorer: scorer.New(p.Store, o)}
	}
	v, err := scorer.NewVariants(cfg.Scorer.VariantSalt, vs, b.reg)
	if err != nil {
		return err
	}
	p.Variants, b.refresher = v, v
	return nil
}

// catalogWriter builds the catalog writer (ingest role with the catalog).
func (b *builder) catalogWriter() error {
	p, cfg := b.p, b.cfg
	if !cfg.Catalog.Enabled || !cfg.Run.Has(config.RoleIngest) {
		return nil
	}
	if b.cm == nil {
		b.cm = consumer.NewCatalogMetrics(b.reg)
	}
	for _, r := range []string{"ok", "invalid", "fenced"} {
		b.cm.Records.WithLabelValues("writer", r)
	}
	for _, r := range catalog.Reasons {
		b.cm.Invalid.WithLabelValues(string(r))
	}
	cw, err := consumer.NewCatalogWriter(consumer.CatalogWriterOptions{
		Kafka:           p.kafka,
		Topic:           cfg.Kafka.ItemsTopic,
		Group:           cfg.Catalog.Group,
		DLQTopic:        cfg.Kafka.DLQTopic,
		RefreshTopic:    cfg.Kafka.RefreshTopic,
		ListTTL:         cfg.Scorer.ListTTL,
		BatchMax:        cfg.Ingest.BatchMaxEvents,
		BatchWait:       cfg.Ingest.BatchMaxWait,
		ShutdownTimeout: batchShutdown(cfg.Run.ShutdownTimeout),
		Now:             b.now,
		Metrics:         p.Metrics,
		CatalogMetrics:  b.cm,
		Logger:          b.rlog.With("role", "catalog-writer"),
	}, p.Store)
	if err != nil {
		return err
	}
	p.CatalogWriter = cw
	return nil
}

// ingest builds the ingest consumer and, with kafka.control_topic, the
// control consumer (ingest role).
func (b *builder) ingest() error {
	p, cfg := b.p, b.cfg
	if !cfg.Run.Has(config.RoleIngest) {
		return nil
	}
	ing, err := consumer.NewIngest(consumer.IngestOptions{
		Kafka:            p.kafka,
		Topic:            cfg.Kafka.EventsTopic,
		DLQTopic:         cfg.Kafka.DLQTopic,
		RefreshTopic:     cfg.Kafka.RefreshTopic,
		Group:            cfg.Kafka.IngestGroup,
		BatchMaxEvents:   cfg.Ingest.BatchMaxEvents,
		BatchMaxWait:     cfg.Ingest.BatchMaxWait,
		ItemWindow:       cfg.Ingest.ItemWindow,
		ItemWindowEvents: cfg.Ingest.ItemWindowEvents,
		ItemTopic:        itemTopic(cfg),
		ShutdownTimeout:  batchShutdown(cfg.Run.ShutdownTimeout),
		Decoder:          Decoder(cfg),
		Metrics:          p.Metrics,
		Logger:           b.rlog.With("role", "ingest"),
		UserID:           p.userID(),
		Assigned:         p.Store.AssignedPartitions,
	}, p.Store)
	if err != nil {
		return err
	}
	p.Ingest = ing
	b.watches = append(b.watches, consumer.LagWatch{Group: cfg.Kafka.IngestGroup, Topic: cfg.Kafka.EventsTopic})
	if cfg.Kafka.ControlTopic != "" {
		p.Control = consumer.NewControl(consumer.ControlOptions{
			Kafka:        p.kafka,
			Topic:        cfg.Kafka.ControlTopic,
			Group:        cfg.Kafka.IngestGroup + "-control",
			RefreshTopic: cfg.Kafka.RefreshTopic,
			Forget:       p.forgetFromControl,
			Logger:       b.rlog.With("role", "control"),
		})
	}
	return nil
}

// itemTopic is the repartition topic the ingest role sends item
// contributions to: none unless ingest.item_owner.
func itemTopic(cfg config.Config) string {
	if !cfg.Ingest.ItemOwner {
		return ""
	}
	return cfg.Kafka.ItemUpdatesTopic
}

// itemOwnerBatch is the most messages of the repartition topic an item
// owner takes in per batch (its reader queues four times as many). A
// message holds a whole ingest batch's updates of the items of its
// partition (up to about 256 KB), so batches counted in events, as the
// ingest consumer's are, queued gigabytes in the reader and made flushes
// far longer than ingest.item_flush_interval.
const itemOwnerBatch = 16

// items builds the item owner's consumer (items role, with
// ingest.item_owner).
func (b *builder) items() error {
	p, cfg := b.p, b.cfg
	if !cfg.Run.Has(config.RoleItems) || !cfg.Ingest.ItemOwner {
		return nil
	}
	owner := p.Store.NewItemOwner(store.ItemOwnerOptions{
		Idle:     cfg.Ingest.ItemOwnerIdle,
		MaxItems: cfg.Ingest.ItemOwnerCache,
		Metrics:  b.itemMetrics,
	})
	it, err := consumer.NewItemOwner(consumer.ItemOwnerOptions{
		Kafka:           p.kafka,
		Topic:           cfg.Kafka.ItemUpdatesTopic,
		Group:           cfg.Kafka.ItemOwnerGroup,
		RefreshTopic:    cfg.Kafka.RefreshTopic,
		BatchMax:        itemOwnerBatch,
		BatchWait:       cfg.Ingest.BatchMaxWait,
		FlushInterval:   cfg.Ingest.ItemFlushInterval,
		ShutdownTimeout: batchShutdown(cfg.Run.ShutdownTimeout),
		Metrics:         p.Metrics,
		Logger:          b.rlog.With("role", config.RoleItems),
	}, owner)
	if err != nil {
		return err
	}
	p.Items = it
	b.watches = append(b.watches, consumer.LagWatch{Group: cfg.Kafka.ItemOwnerGroup, Topic: cfg.Kafka.ItemUpdatesTopic})
	return nil
}

// score builds the score consumer (score role), refreshing lists with the
// scorer or the variants.
func (b *builder) score() error {
	p, cfg := b.p, b.cfg
	if !cfg.Run.Has(config.RoleScore) {
		return nil
	}
	sc, err := consumer.NewScore(consumer.ScoreOptions{
		Kafka:           p.kafka,
		Topic:           cfg.Kafka.RefreshTopic,
		Group:           cfg.Kafka.ScoreGroup,
		Debounce:        cfg.Scorer.Debounce,
		Workers:         cfg.Scorer.Workers,
		ShutdownTimeout: batchShutdown(cfg.Run.ShutdownTimeout),
		Metrics:         p.Metrics,
		Logger:          b.rlog.With("role", "score"),
	}, b.refresher)
	if err != nil {
		return err
	}
	p.Score = sc
	b.watches = append(b.watches, consumer.LagWatch{Group: cfg.Kafka.ScoreGroup, Topic: cfg.Kafka.RefreshTopic})
	return nil
}

// lag builds the lag monitor of the running roles' groups and sets every
// role not ready until readiness is first evaluated.
func (b *builder) lag() {
	p, cfg := b.p, b.cfg
	p.Lag = consumer.NewLagMonitor(consumer.LagMonitorOptions{
		Kafka:        p.kafka,
		Watches:      b.watches,
		Interval:     cfg.Admin.LagInterval,
		LagThreshold: cfg.Admin.LagThreshold,
		Metrics:      p.Metrics,
		Registerer:   b.reg,
		Logger:       b.rlog.With("role", "lag"),
	})
	p.setPhase("not running")
	for _, r := range cfg.Run.Roles {
		if r == config.RoleItems && p.Items == nil {
			continue // nothing runs
		}
		p.Metrics.Ready.WithLabelValues(r).Set(0)
	}
	if p.CatalogWriter != nil {
		p.Metrics.Ready.WithLabelValues("catalog").Set(0)
	}
}

// Listen opens the admin listener now (so its address is known before Run).
func (p *Processor) Listen() (net.Addr, error) {
	if p.Config.Admin.Listen == "" {
		return nil, nil
	}
	ln, err := net.Listen("tcp", p.Config.Admin.Listen)
	if err != nil {
		return nil, fmt.Errorf("admin: listening on %s: %w", p.Config.Admin.Listen, err)
	}
	p.admin = ln
	return ln.Addr(), nil
}

// batchShutdown is how long the consumers may finish their batch in flight
// after the signal: run.shutdown_timeout less what closing the readers and
// leaving the groups needs (a fifth, at least 0.5 s and at most 2 s, never
// more than half), so that Run ends cleanly within run.shutdown_timeout.
func batchShutdown(d time.Duration) time.Duration {
	return d - min(max(d/5, 500*time.Millisecond), 2*time.Second, d/2)
}

// closeShutdown is how long a consumer waits for its Kafka reader to
// close once its batch is done: half of what batchShutdown leaves, the
// other half being the margin for the rest of the roles to return.
func closeShutdown(d time.Duration) time.Duration {
	return (d - batchShutdown(d)) / 2
}

// ErrShutdownTimeout is returned by Run when the roles did not stop within
// run.shutdown_timeout after ctx ended; what was still running is abandoned
// (an unfinished batch is replayed by the partition's next owner and
// fenced).
var ErrShutdownTimeout = errors.New("shutdown did not finish within run.shutdown_timeout")

// Run serves the admin server and polls readiness and lag from the start,
// whatever is down; waits for Redis and the broker (creating missing topics
// when configured); then runs the roles until ctx ends. After ctx ends it
// returns within run.shutdown_timeout.
func (p *Processor) Run(ctx context.Context) error {
	defer p.Redis.Close()
	if p.admin == nil && p.Config.Admin.Listen != "" {
		if _, err := p.Listen(); err != nil {
			return err
		}
	}
	p.setPhase("waiting for redis")
	g, gctx := errgroup.WithContext(ctx)
	var rs roleSet
	if p.admin != nil {
		srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
		rs.goRun(g, "admin server", func() error {
			if err := srv.Serve(p.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin: %w", err)
			}
			return nil
		})
		rs.goRun(g, "admin shutdown", func() error {
			<-gctx.Done()
			// Requests in flight get a moment; a connection opened without a
			// request yet (a scraper's) would hold Shutdown for 5 s.
			sctx, cancel := context.WithTimeout(context.Background(), 200*time.Millisecond)
			defer cancel()
			if err := srv.Shutdown(sctx); err != nil {
				return srv.Close()
			}
			return nil
		})
	}
	rs.goRun(g, "lag monitor", func() error { return p.Lag.Run(gctx) })
	rs.goRun(g, "readiness", func() error { p.trackReadiness(gctx); return nil })
	rs.goRun(g, "start-up", func() error {
		if err := p.waitRedis(gctx); err != nil {
			return err
		}
		p.setPhase("waiting for the broker")
		if err := p.waitKafka(gctx); err != nil {
			return err
		}
		p.setPhase("")
		return p.runRoles(gctx, &rs)
	})
	done := make(chan error, 1)
	go func() { done <- g.Wait() }()
	select {
	case err := <-done:
		return err
	case <-ctx.Done():
	}
	t := time.NewTimer(p.Config.Run.ShutdownTimeout)
	defer t.Stop()
	select {
	case err := <-done:
		return err
	case <-t.C:
		p.log.Error("shutdown did not finish in time; exiting with the rest unfinished",
			"shutdown_timeout", p.Config.Run.ShutdownTimeout, "still_running", rs.running())
		return ErrShutdownTimeout
	}
}

// runRoles runs the consumers, the catalog and EASE until ctx ends.
func (p *Processor) runRoles(ctx context.Context, rs *roleSet) error {
	g, gctx := errgroup.WithContext(ctx)
	if p.Ingest != nil {
		rs.goRun(g, "ingest", func() error { return p.Ingest.Run(gctx) })
		rs.goRun(g, "user copies", func() error { p.Store.TrimUserCopies(gctx); return nil })
	}
	if p.Items != nil {
		rs.goRun(g, "items", func() error { return p.Items.Run(gctx) })
	}
	if p.Score != nil {
		rs.goRun(g, "score", func() error {
			p.waitCatalog(gctx)
			p.scoreStarted.Store(true)
			return p.Score.Run(gctx)
		})
	}
	if p.CatalogLoader != nil {
		rs.goRun(g, "catalog loader", func() error { return p.CatalogLoader.Run(gctx) })
	}
	if p.CatalogWriter != nil {
		rs.goRun(g, "catalog writer", func() error { return p.CatalogWriter.Run(gctx) })
	}
	if p.EASE != nil {
		// Score roles fit the model; every process loads it (admin ranks).
		rs.goRun(g, "ease", func() error { return p.EASE.Run(gctx, p.Store, p.Score != nil) })
	}
	if p.Control != nil {
		rs.goRun(g, "control", func() error { return p.Control.Run(gctx) })
	}
	return g.Wait()
}

// roleSet names the goroutines of Run that have not returned yet, for the
// log line of a shutdown that ran out of time.
type roleSet struct {
	mu   sync.Mutex
	live map[string]int
}

func (rs *roleSet) goRun(g *errgroup.Group, name string, f func() error) {
	rs.mu.Lock()
	if rs.live == nil {
		rs.live = make(map[string]int)
	}
	rs.live[name]++
	rs.mu.Unlock()
	g.Go(func() error {
		defer func() {
			rs.mu.Lock()
			if rs.live[name]--; rs.live[name] == 0 {
				delete(rs.live, name)
			}
			rs.mu.Unlock()
		}()
		return f()
	})
}

// running returns the names of the goroutines still running, sorted.
func (rs *roleSet) running() []string {
	rs.mu.Lock()
	defer rs.mu.Unlock()
	return slices.Sorted(maps.Keys(rs.live))
}

// waitKafka checks the broker (an authentication or TLS failure ends
// start-up) and, with kafka.create_topics, creates the missing topics,
// retrying while the broker cannot be reached.
func (p *Processor) waitKafka(ctx context.Context) error {
	if err := p.checkKafka(ctx); err != nil {
		return err
	}
	c := p.Config.Kafka
	if !c.CreateTopics {
		return nil
	}
	topics := p.Config.Topics()
	backoff := 500 * time.Millisecond
	for attempt := 0; ; attempt++ {
		err := p.kafka.EnsureTopics(ctx, c.Partitions, topics...)
		if err == nil {
			return nil
		}
		if ctx.Err() != nil {
			return fmt.Errorf("kafka: %w (last error: %v)", ctx.Err(), err)
		}
		if isAuthError(err) {
			return fmt.Errorf("%w: creating topics: %v", ErrKafkaAuth, err)
		}
		if attempt == 0 {
			p.log.Warn("waiting for kafka to create the topics", "brokers", c.Brokers, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("kafka: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(backoff):
		}
		backoff = min(2*backoff, 5*time.Second)
	}
}

// waitCatalog waits until the catalog index has read the items topic up
// to the end it found at start, so that the first lists already use the
// catalog; after 30 s it gives up waiting and scoring starts anyway.
func (p *Processor) waitCatalog(ctx context.Context) {
	if p.CatalogLoader == nil {
		return
	}
	deadline := time.Now().Add(30 * time.Second)
	for !p.CatalogLoader.Loaded() {
		if time.Now().After(deadline) {
			p.log.Warn("catalog not loaded after 30s; scoring without waiting for it")
			return
		}
		select {
		case <-ctx.Done():
			return
		case <-time.After(20 * time.Millisecond):
		}
	}
}

// waitRedis waits until Redis answers and the scripts are loaded.
func (p *Processor) waitRedis(ctx context.Context) error {
	for attempt := 0; ; attempt++ {
		err := p.Store.LoadScripts(ctx)
		if err == nil {
			return nil
		}
		if isRedisAuthError(err) {
			return fmt.Errorf("%w: %v", ErrRedisAuth, err)
		}
		if attempt == 0 {
			p.log.Warn("waiting for redis", "addrs", p.Config.Redis.Addrs, "err", err)
		}
		select {
		case <-ctx.Done():
			return fmt.Errorf("redis: %w (last error: %v)", ctx.Err(), err)
		case <-time.After(500 * time.Millisecond):
		}
	}
}

// readyPingTimeout bounds the readiness check's Redis PING, so that a probe
// answers within Kubernetes' default probe timeout (1 s) also when Redis
// does not answer at all.
const readyPingTimeout = 500 * time.Millisecond

// Ready reports whether the process is ready, or the reason it is not,
// root causes first: Redis does not answer a PING; the broker did not
// answer the lag poller (consumer.LagMonitor.Broker); start-up still waits
// for Redis or the broker; a role is loading the catalog or retrying a
// failed batch; a role's group has no partition assigned
// (consumer.LagMonitor.Check).
func (p *Processor) Ready(ctx context.Context) error {
	_, err := p.readiness(ctx)
	return err
}

// readiness returns the first reason the process is not ready and each
// running role's own: the shared causes (Redis, the broker, start-up)
// apply to every role.
func (p *Processor) readiness(ctx context.Context) (map[string]error, error) {
	roles := make(map[string]error, 2)
	var shared error
	if err := p.pingRedis(ctx); err != nil {
		shared = fmt.Errorf("redis: unreachable: %w", err)
	} else if err := p.Lag.Broker(); err != nil {
		shared = err
	} else if ph := p.phase(); ph != "" {
		shared = fmt.Errorf("starting: %s", ph)
	}
	first := shared
	role := func(name string, err error) {
		if err == nil {
			err = shared
		}
		roles[name] = err
		if first == nil {
			first = err
		}
	}
	if p.Ingest != nil {
		var err error
		if !p.Ingest.Ready() {
			err = errors.New("ingest: retrying a failed batch")
		}
		role(config.RoleIngest, err)
	}
	if p.Items != nil {
		var err error
		if !p.Items.Ready() {
			err = errors.New("items: retrying a failed flush")
		}
		role(config.RoleItems, err)
	}
	if p.Score != nil {
		var err error
		switch {
		case !p.scoreStarted.Load():
			err = errors.New("score: loading the catalog")
		case !p.Score.Ready():
			err = errors.New("score: retrying a failed rescore")
		}
		role(config.RoleScore, err)
	}
	if p.CatalogWriter != nil {
		var err error
		if !p.CatalogWriter.Ready() {
			err = errors.New("catalog writer: retrying a failed batch")
		}
		role("catalog", err)
	}
	if first != nil {
		return roles, first
	}
	// Group assignment last: it follows from everything above.
	if p.Ingest != nil {
		roles[config.RoleIngest] = p.Lag.CheckGroup(p.Config.Kafka.IngestGroup)
	}
	if p.Score != nil {
		roles[config.RoleScore] = p.Lag.CheckGroup(p.Config.Kafka.ScoreGroup)
	}
	if p.Items != nil {
		roles[config.RoleItems] = p.Lag.CheckGroup(p.Config.Kafka.ItemOwnerGroup)
	}
	return roles, p.Lag.Check()
}

// trackReadiness evaluates readiness once a second until ctx ends: it keeps
// the result for /readyz and the status page and sets
// recstream_ready{role} for every running role.
func (p *Processor) trackReadiness(ctx context.Context) {
	t := time.NewTicker(time.Second)
	defer t.Stop()
	for {
		roles, err := p.readiness(ctx)
		if ctx.Err() != nil {
			return
		}
		p.lastReady.Store(&readyResult{err, time.Now()})
		for r, err := range roles {
			v := 1.0
			if err != nil {
				v = 0
			}
			p.Metrics.Ready.WithLabelValues(r).Set(v)
		}
		select {
		case <-ctx.Done():
			return
		case <-t.C:
		}
	}
}

// cachedReady is Ready as trackReadiness last evaluated it, so that a probe
// answers at once whatever is down; evaluated now when that result is
// missing or older than 3 s.
func (p *Processor) cachedReady(ctx context.Context) error {
	if r := p.lastReady.Load(); r != nil && time.Since(r.at) < 3*time.Second {
		return r.err
	}
	return p.Ready(ctx)
}

// pingRedis sends a PING with readyPingTimeout. It returns early with the
// dial error when a dial fails meanwhile: go-redis would retry it for
// longer than the timeout and then report only the timeout.
func (p *Processor) pingRedis(ctx context.Context) error {
	start := time.Now()
	cctx, cancel := context.WithTimeout(ctx, readyPingTimeout)
	defer cancel()
	done := make(chan error, 1)
	go func() { done <- p.Store.Ping(cctx) }()
	t := time.NewTicker(10 * time.Millisecond)
	defer t.Stop()
	for {
		select {
		case err := <-done:
			if d := p.dialErr.since(start); err != nil && d != nil {
				return d
			}
			return err
		case <-t.C:
			if d := p.dialErr.since(start); d != nil {
				return d
			}
		}
	}
}

func (p *Processor) setPhase(s string) { p.startPhase.Store(&s) }

// phase is what start-up waits for; "" once the roles run.
func (p *Processor) phase() string {
	if s := p.startPhase.Load(); s != nil {
		return *s
	}
	return ""
}

// Handler serves /metrics, /healthz, /readyz, the status page at / and the
// read API under /api/v1/ (package admin).
func (p *Processor) Handler() http.Handler {
	mux := http.NewServeMux()
	var ranker admin.Ranker = p.Scorer
	if p.Variants != nil {
		ranker = p.Variants
	}
	ao := admin.Options{
		Store: p.Store, Ranker: ranker, Lag: p.Lag, Gatherer: p.gatherer, Ready: p.cachedReady,
		Roles: p.Config.Run.Roles, Version: p.version, Logger: p.log,
		Auth: admin.UserAuth{
			Token: p.Config.Admin.Token, Username: p.Config.Admin.Username, Password: p.Config.Admin.Password,
			Anonymous: p.Config.Admin.AnonymousUserLookup,
		},
	}
	if p.Config.Attribution.Window > 0 {
		ao.Experiment = p.ExperimentReport
	}
	admin.New(ao).Register(mux)
	mux.Handle("/metrics", promhttp.HandlerFor(p.gatherer, promhttp.HandlerOpts{}))
	mux.HandleFunc("/healthz", func(w http.ResponseWriter, _ *http.Request) {
		_, _ = w.Write([]byte("ok\n"))
	})
	mux.HandleFunc("/readyz", func(w http.ResponseWriter, r *http.Request) {
		if err := p.cachedReady(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
