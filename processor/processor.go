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
	"net"
	"net/http"
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
}

// Processor is one recstream process: the roles its configuration selects.
type Processor struct {
	Config  config.Config
	Redis   redis.UniversalClient
	Store   *store.Store
	Scorer  *scorer.Scorer
	Ingest  *consumer.Ingest // nil unless the ingest role runs
	Score   *consumer.Score  // nil unless the score role runs
	EASE    *scorer.EASE     // nil unless scorer.weights.ease > 0
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

// StoreOptions maps the model section onto store options.
func StoreOptions(c config.Config) store.Options {
	w := c.Model.Weights
	return store.Options{
		Prefix:       c.Redis.KeyPrefix,
		Weights:      map[event.Type]float64{event.Browse: w.Browse, event.Click: w.Click, event.AddToCart: w.AddToCart, event.Purchase: w.Purchase},
		HalfLife:     c.Model.HalfLife,
		Epoch:        c.Model.EpochTime(),
		UserItemsCap: c.Model.UserItemsCap,
		UserLogCap:   c.Model.UserLogCap,
		ItemUsersCap: c.Model.ItemUsersCap,
		CoocCap:      c.Model.CoocCap,
		CoocHistory:  c.Model.CoocHistory,
		TrendingCap:  c.Model.TrendingCap,
		UserTTL:      c.Model.UserTTL,
		Attribution: store.AttributionOptions{
			Window:              c.Attribution.Window,
			NoListFallback:      !c.Attribution.ListFallback,
			ShownCap:            c.Attribution.ShownCap,
			RefreshOnImpression: c.Attribution.Discount > 0,
		},
	}
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

// ScorerOptions maps the scorer section onto scorer options.
func ScorerOptions(c config.Config) scorer.Options {
	s := c.Scorer
	o := scorer.Options{
		TopN:           s.TopN,
		Neighbours:     s.Neighbours,
		CandidateUsers: s.CandidateUsers,
		HistoryItems:   s.HistoryItems,
		RecentEvents:   s.RecentEvents,
		RecencyBoost:   s.RecencyBoost,
		UserItems:      c.Model.UserItemsCap,
		UserSimilarity: s.UserSimilarity,
		ItemSimilarity: s.ItemSimilarity,
		Shrinkage:      s.Shrinkage,
		WeightUserKNN:  s.Weights.UserKNN,
		WeightItemKNN:  s.Weights.ItemKNN,
		WeightTrending: s.Weights.Trending,
		WeightEASE:     s.Weights.EASE,
		WeightContent:  s.Weights.Content,
		WeightNew:      s.Weights.NewArrivals,
		WeightPopular:  s.Weights.Popular,
		ItemNeighbours: itemNeighbours(s.ItemNeighbours),
		UsersPerItem:   s.UsersPerItem,
		NeighbourItems: s.NeighbourItems,
		MaxPerCategory: s.MaxPerCategory,
		NewSlots:       s.NewArrivalSlots,
		Content: scorer.ContentOptions{
			Categories: s.ContentCategories,
			Brands:     s.ContentBrands,
			PerGroup:   s.ContentCandidates,
			NewWindow:  s.NewArrivalWindow,
		},
		ExcludeSeen:        s.ExcludeSeen,
		ListTTL:            s.ListTTL,
		ModelName:          s.ModelName,
		TrendingRefresh:    s.TrendingRefresh,
		NeighbourTTL:       s.NeighbourTTL,
		DegreeTTL:          s.NeighbourTTL,
		ImpressionDiscount: c.Attribution.Discount, // Shown is set where the store exists
	}
	o.ItemNeighbourBudget = s.ItemNeighbourBudget
	// Retention: a user's list never outlives the user's state.
	if u := c.Model.UserTTL; u > 0 && (o.ListTTL <= 0 || o.ListTTL > u) {
		o.ListTTL = u
	}
	return o
}

// itemNeighbours maps the config's 0 (whole rows) onto the scorer's -1.
func itemNeighbours(n int) int {
	if n == 0 {
		return -1
	}
	return n
}

// EASEOptions maps the scorer section onto the EASE model's options.
func EASEOptions(c config.Config) scorer.EASEOptions {
	return scorer.EASEOptions{
		Lambda:    c.Scorer.EASELambda,
		MaxItems:  c.Scorer.EASEMaxItems,
		UserItems: c.Model.UserItemsCap,
		Interval:  c.Scorer.EASERefresh,
	}
}

// KafkaOptions maps the kafka section onto the consumers' shared settings.
func KafkaOptions(c config.Config) consumer.Kafka {
	return consumer.Kafka{
		Brokers:          c.Kafka.Brokers,
		ClientID:         c.Kafka.ClientID,
		SessionTimeout:   c.Kafka.SessionTimeout,
		RebalanceTimeout: c.Kafka.RebalanceTimeout,
		MaxWait:          c.Kafka.MaxWait,
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
	reg := d.Registerer
	gat := d.Gatherer
	if reg == nil {
		r := prometheus.NewRegistry()
		reg, gat = r, r
	}
	if gat == nil {
		gat = prometheus.DefaultGatherer
	}
	m := consumer.NewMetrics(reg)
	rdb := NewRedis(cfg.Redis)
	store.NewRedisMetrics(reg).InstrumentClient(rdb)
	// Repeated warnings (a broker or Redis outage retried in a loop) are
	// written once per interval with a count of the suppressed ones.
	rlog := slog.New(logx.RateLimit(log.Handler(), 10*time.Second))
	so := StoreOptions(cfg)
	so.Logger = log
	so.CoocMetrics = store.NewCoocMetrics(reg)
	st := store.New(rdb, so)
	if cfg.Attribution.Window > 0 {
		reg.MustRegister(experiment.NewCollector(st.ReadExperiment, VariantNames(cfg)))
	}
	sco := ScorerOptions(cfg)
	sco.Logger = log
	sco.Shown = st.ShownCounts
	if d.Now != nil {
		sco.Now = d.Now
	}
	var ease *scorer.EASE
	if cfg.Scorer.Weights.EASE > 0 {
		eo := EASEOptions(cfg)
		eo.Logger = log.With("model", "ease")
		ease = scorer.NewEASE(eo)
		sco.EASE = ease
	}
	k := KafkaOptions(cfg)
	k.Dialer, k.Transport = dialer, transport
	k.Logger = rlog.With("role", "kafka")
	var cm *consumer.CatalogMetrics
	var idx *catalog.Index
	var loader *consumer.CatalogLoader
	if cfg.Catalog.Enabled && cfg.Run.Has(config.RoleScore) {
		cm = consumer.NewCatalogMetrics(reg)
		idx = catalog.NewIndex()
		sco.Catalog = idx
		loader = consumer.NewCatalogLoader(consumer.CatalogLoaderOptions{Kafka: k, Topic: cfg.Kafka.ItemsTopic, Metrics: cm, Logger: rlog.With("role", "catalog")}, idx)
	}
	sc := scorer.New(st, sco)
	p := &Processor{Config: cfg, Redis: rdb, Store: st, Scorer: sc, EASE: ease, Metrics: m, log: log, gatherer: gat, version: d.Version, kafka: k, pseudo: Pseudonymizer(cfg), Catalog: idx, CatalogLoader: loader}
	var watches []consumer.LagWatch
	var refresher consumer.Refresher = sc
	if specs, _ := config.ParseVariants(cfg.Scorer.Variants); len(specs) > 0 {
		vs := make([]scorer.Variant, len(specs))
		for i, spec := range specs {
			c := cfg
			c.Scorer.Weights = spec.Apply(cfg.Scorer.Weights)
			o := ScorerOptions(c)
			o.Logger, o.Catalog, o.Now, o.EASE = sco.Logger, sco.Catalog, sco.Now, sco.EASE
			vs[i] = scorer.Variant{Name: spec.Name, Share: spec.Share, Scorer: scorer.New(st, o)}
		}
		v, err := scorer.NewVariants(cfg.Scorer.VariantSalt, vs, reg)
		if err != nil {
			return nil, err
		}
		p.Variants, refresher = v, v
	}
	if cfg.Catalog.Enabled && cfg.Run.Has(config.RoleIngest) {
		if cm == nil {
			cm = consumer.NewCatalogMetrics(reg)
		}
		cw, err := consumer.NewCatalogWriter(consumer.CatalogWriterOptions{
			Kafka:           k,
			Topic:           cfg.Kafka.ItemsTopic,
			Group:           cfg.Catalog.Group,
			DLQTopic:        cfg.Kafka.DLQTopic,
			RefreshTopic:    cfg.Kafka.RefreshTopic,
			ListTTL:         cfg.Scorer.ListTTL,
			BatchMax:        cfg.Ingest.BatchMaxEvents,
			BatchWait:       cfg.Ingest.BatchMaxWait,
			ShutdownTimeout: cfg.Run.ShutdownTimeout,
			Now:             d.Now,
			Metrics:         m,
			CatalogMetrics:  cm,
			Logger:          rlog.With("role", "catalog-writer"),
		}, st)
		if err != nil {
			return nil, err
		}
		p.CatalogWriter = cw
	}
	if cfg.Run.Has(config.RoleIngest) {
		ing, err := consumer.NewIngest(consumer.IngestOptions{
			Kafka:            k,
			Topic:            cfg.Kafka.EventsTopic,
			DLQTopic:         cfg.Kafka.DLQTopic,
			RefreshTopic:     cfg.Kafka.RefreshTopic,
			Group:            cfg.Kafka.IngestGroup,
			BatchMaxEvents:   cfg.Ingest.BatchMaxEvents,
			BatchMaxWait:     cfg.Ingest.BatchMaxWait,
			ItemWindow:       cfg.Ingest.ItemWindow,
			ItemWindowEvents: cfg.Ingest.ItemWindowEvents,
			ShutdownTimeout:  cfg.Run.ShutdownTimeout,
			Decoder:          Decoder(cfg),
			Metrics:          m,
			Logger:           rlog.With("role", "ingest"),
			UserID:           p.userID(),
		}, st)
		if err != nil {
			return nil, err
		}
		p.Ingest = ing
		watches = append(watches, consumer.LagWatch{Group: cfg.Kafka.IngestGroup, Topic: cfg.Kafka.EventsTopic})
		if cfg.Kafka.ControlTopic != "" {
			p.Control = consumer.NewControl(consumer.ControlOptions{
				Kafka:        k,
				Topic:        cfg.Kafka.ControlTopic,
				Group:        cfg.Kafka.IngestGroup + "-control",
				RefreshTopic: cfg.Kafka.RefreshTopic,
				Forget:       p.forgetFromControl,
				Logger:       rlog.With("role", "control"),
			})
		}
	}
	if cfg.Run.Has(config.RoleScore) {
		sc, err := consumer.NewScore(consumer.ScoreOptions{
			Kafka:           k,
			Topic:           cfg.Kafka.RefreshTopic,
			Group:           cfg.Kafka.ScoreGroup,
			Debounce:        cfg.Scorer.Debounce,
			Workers:         cfg.Scorer.Workers,
			ShutdownTimeout: cfg.Run.ShutdownTimeout,
			Metrics:         m,
			Logger:          rlog.With("role", "score"),
		}, refresher)
		if err != nil {
			return nil, err
		}
		p.Score = sc
		watches = append(watches, consumer.LagWatch{Group: cfg.Kafka.ScoreGroup, Topic: cfg.Kafka.RefreshTopic})
	}
	p.Lag = consumer.NewLagMonitor(consumer.LagMonitorOptions{
		Kafka:      k,
		Watches:    watches,
		Interval:   cfg.Admin.LagInterval,
		Metrics:    m,
		Registerer: reg,
		Logger:     rlog.With("role", "lag"),
	})
	return p, nil
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

// Run connects, creates missing topics when configured, and runs the roles
// and the admin server until ctx ends.
func (p *Processor) Run(ctx context.Context) error {
	defer p.Redis.Close()
	if err := p.waitRedis(ctx); err != nil {
		return err
	}
	if err := p.checkKafka(ctx); err != nil {
		return err
	}
	if p.Config.Kafka.CreateTopics {
		c := p.Config.Kafka
		topics := []string{c.EventsTopic, c.DLQTopic, c.RefreshTopic, c.ItemsTopic}
		if c.ControlTopic != "" {
			topics = append(topics, c.ControlTopic)
		}
		if err := p.kafka.EnsureTopics(ctx, c.Partitions, topics...); err != nil {
			return err
		}
	}
	g, gctx := errgroup.WithContext(ctx)
	g.Go(func() error { return p.Lag.Run(gctx) })
	if p.Ingest != nil {
		g.Go(func() error { return p.Ingest.Run(gctx) })
	}
	if p.Score != nil {
		g.Go(func() error {
			p.waitCatalog(gctx)
			return p.Score.Run(gctx)
		})
	}
	if p.CatalogLoader != nil {
		g.Go(func() error { return p.CatalogLoader.Run(gctx) })
	}
	if p.CatalogWriter != nil {
		g.Go(func() error { return p.CatalogWriter.Run(gctx) })
	}
	if p.EASE != nil {
		g.Go(func() error { return p.EASE.Run(gctx, p.Store) })
	}
	if p.Control != nil {
		g.Go(func() error { return p.Control.Run(gctx) })
	}
	if p.admin == nil && p.Config.Admin.Listen != "" {
		if _, err := p.Listen(); err != nil {
			return err
		}
	}
	if p.admin != nil {
		srv := &http.Server{Handler: p.Handler(), ReadHeaderTimeout: 5 * time.Second}
		g.Go(func() error {
			if err := srv.Serve(p.admin); err != nil && !errors.Is(err, http.ErrServerClosed) {
				return fmt.Errorf("admin: %w", err)
			}
			return nil
		})
		g.Go(func() error {
			<-gctx.Done()
			sctx, cancel := context.WithTimeout(context.Background(), 2*time.Second)
			defer cancel()
			return srv.Shutdown(sctx)
		})
	}
	return g.Wait()
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

// Ready reports whether every role runs healthy (no outage: not retrying a
// failed batch), Redis answers, the broker answered the last lag poll and
// every role's group has partitions assigned (see consumer.LagMonitor.Check).
func (p *Processor) Ready(ctx context.Context) error {
	if p.Ingest != nil && !p.Ingest.Ready() {
		return errors.New("ingest: retrying a failed batch")
	}
	if p.Score != nil && !p.Score.Ready() {
		return errors.New("score: retrying a failed rescore")
	}
	if p.CatalogWriter != nil && !p.CatalogWriter.Ready() {
		return errors.New("catalog writer: retrying a failed batch")
	}
	cctx, cancel := context.WithTimeout(ctx, time.Second)
	defer cancel()
	if err := p.Store.Ping(cctx); err != nil {
		return fmt.Errorf("redis: %w", err)
	}
	return p.Lag.Check()
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
		Store: p.Store, Ranker: ranker, Lag: p.Lag, Gatherer: p.gatherer, Ready: p.Ready,
		Roles: p.Config.Run.Roles, Version: p.version, Logger: p.log,
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
		if err := p.Ready(r.Context()); err != nil {
			http.Error(w, "not ready: "+err.Error(), http.StatusServiceUnavailable)
			return
		}
		_, _ = w.Write([]byte("ready\n"))
	})
	return mux
}
