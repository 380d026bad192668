package config

import (
	"errors"
	"fmt"
	"math"
	"net"
	"strconv"
	"strings"
	"time"
	"unicode"
)

// decayHorizon is how long after model.epoch decayed weights must stay
// representable: weights are stored as w·2^((t−epoch)/half_life), so
// decayHorizon/half_life must stay below maxDecayExponent.
const (
	decayHorizon     = 30 * 8766 * time.Hour // 30 years of 365.25 days
	maxDecayExponent = 1000
)

// Validate checks every section and returns all problems found, joined
// with errors.Join, one per line. Each problem starts with the full dotted
// key it concerns, e.g. "kafka.brokers: must not be empty".
func (c Config) Validate() error {
	return errors.Join(
		c.Run.Validate(),
		c.Log.Validate(),
		c.Kafka.Validate(),
		c.Redis.Validate(),
		c.Ingest.Validate(),
		c.Model.Validate(),
		c.Scorer.Validate(),
		c.Catalog.Validate(c.Kafka),
		c.Admin.Validate(),
		c.Privacy.Validate(),
		c.Attribution.Validate(),
	)
}

// Validate checks the run section.
func (s RunConfig) Validate() error {
	var p problems
	if len(s.Roles) == 0 {
		p.add("run.roles", "must not be empty (want some of %s, %s, %s)", RoleIngest, RoleScore, RoleItems)
	}
	seen := map[string]bool{}
	for _, r := range s.Roles {
		switch {
		case r != RoleIngest && r != RoleScore && r != RoleItems:
			p.add("run.roles", "unknown role %q (want %s, %s or %s)", r, RoleIngest, RoleScore, RoleItems)
		case seen[r]:
			p.add("run.roles", "duplicate role %q", r)
		}
		seen[r] = true
	}
	p.positiveDur("run.shutdown_timeout", s.ShutdownTimeout)
	if m := s.MemoryLimitMB; m != 0 && (m < 64 || m > 1<<20) {
		p.add("run.memory_limit_mb", "must be 0 (no limit) or between 64 and %d, got %d", 1<<20, m)
	}
	return p.err()
}

// Validate checks the log section.
func (s LogConfig) Validate() error {
	var p problems
	p.oneOf("log.level", s.Level, "debug", "info", "warn", "error")
	p.oneOf("log.format", s.Format, "text", "json")
	return p.err()
}

// Validate checks the kafka section.
func (s KafkaConfig) Validate() error {
	var p problems
	if len(s.Brokers) == 0 {
		p.add("kafka.brokers", "must not be empty")
	}
	for _, b := range s.Brokers {
		if err := checkHostPort(b, false); err != nil {
			p.add("kafka.brokers", "%q: %v", b, err)
		}
	}
	topics := []struct{ key, name string }{
		{"kafka.events_topic", s.EventsTopic},
		{"kafka.dlq_topic", s.DLQTopic},
		{"kafka.refresh_topic", s.RefreshTopic},
		{"kafka.items_topic", s.ItemsTopic},
		{"kafka.item_updates_topic", s.ItemUpdatesTopic},
	}
	p.kafkaNames(topics)
	p.kafkaNames([]struct{ key, name string }{
		{"kafka.ingest_group", s.IngestGroup},
		{"kafka.score_group", s.ScoreGroup},
		{"kafka.item_owner_group", s.ItemOwnerGroup},
	})
	if s.SessionTimeout < time.Second {
		p.add("kafka.session_timeout", "must be at least 1s, got %v", s.SessionTimeout)
	}
	p.positiveDur("kafka.rebalance_timeout", s.RebalanceTimeout)
	p.positiveDur("kafka.max_wait", s.MaxWait)
	p.minInt("kafka.partitions", s.Partitions, 1)
	if s.ControlTopic != "" {
		topics = append(topics, struct{ key, name string }{"kafka.control_topic", s.ControlTopic})
		p.kafkaNames(topics[len(topics)-1:])
		for _, t := range topics[:len(topics)-1] {
			if t.name == s.ControlTopic {
				p.add("kafka.control_topic", "must differ from %s (both are %q)", t.key, t.name)
			}
		}
	}
	s.TLS.validate(&p, "kafka")
	s.SASL.validate(&p)
	return p.err()
}

// Validate checks the redis section.
func (s RedisConfig) Validate() error {
	var p problems
	if len(s.Addrs) == 0 {
		p.add("redis.addrs", "must not be empty")
	}
	for _, a := range s.Addrs {
		if err := checkHostPort(a, false); err != nil {
			p.add("redis.addrs", "%q: %v", a, err)
		}
	}
	p.minInt("redis.db", s.DB, 0)
	if s.DB != 0 && len(s.Addrs) > 1 && s.MasterName == "" {
		p.add("redis.db", "must be 0 in Redis Cluster mode (several redis.addrs and no redis.master_name), got %d", s.DB)
	}
	if strings.ContainsAny(s.KeyPrefix, "{}") {
		p.add("redis.key_prefix", "must not contain '{' or '}' (they would change the Redis Cluster hash slot), got %q", s.KeyPrefix)
	}
	if strings.IndexFunc(s.KeyPrefix, unicode.IsSpace) >= 0 {
		p.add("redis.key_prefix", "must not contain whitespace, got %q", s.KeyPrefix)
	}
	if len(s.KeyPrefix) > 32 {
		p.add("redis.key_prefix", "must be at most 32 bytes, got %d", len(s.KeyPrefix))
	}
	p.positiveDur("redis.dial_timeout", s.DialTimeout)
	p.positiveDur("redis.read_timeout", s.ReadTimeout)
	p.positiveDur("redis.write_timeout", s.WriteTimeout)
	p.minInt("redis.pool_size", s.PoolSize, 0)
	p.minInt("redis.max_retries", s.MaxRetries, -1)
	s.TLS.validate(&p, "redis")
	if s.MasterName == "" {
		for _, k := range []struct{ key, val string }{
			{"redis.sentinel_username", s.SentinelUsername},
			{"redis.sentinel_password", s.SentinelPassword},
			{"redis.sentinel_password_file", s.SentinelPasswordFile},
		} {
			if k.val != "" {
				p.add(k.key, "is only used with redis.master_name (Sentinel); set it or remove this key")
			}
		}
	}
	return p.err()
}

// Validate checks the ingest section.
func (s IngestConfig) Validate() error {
	var p problems
	p.intRange("ingest.batch_max_events", s.BatchMaxEvents, 1, 100000)
	p.positiveDur("ingest.batch_max_wait", s.BatchMaxWait)
	p.nonNegDur("ingest.item_window", s.ItemWindow)
	p.intRange("ingest.item_window_events", s.ItemWindowEvents, 1, 10000000)
	p.intRange("ingest.max_message_bytes", s.MaxMessageBytes, 1024, 16777216)
	p.nonNegDur("ingest.max_future", s.MaxFuture)
	p.minInt("ingest.workers", s.Workers, 0)
	p.intRange("ingest.user_cache", s.UserCache, 0, 10000000)
	p.nonNegDur("ingest.user_cache_idle", s.UserCacheIdle)
	if s.ItemFlushInterval <= 0 || s.ItemFlushInterval > time.Minute {
		p.add("ingest.item_flush_interval", "must be above 0 and at most 1m, got %v", s.ItemFlushInterval)
	}
	p.nonNegDur("ingest.item_owner_idle", s.ItemOwnerIdle)
	p.intRange("ingest.item_owner_cache", s.ItemOwnerCache, 0, 10000000)
	return p.err()
}

// Validate checks the model section.
func (s ModelConfig) Validate() error {
	var p problems
	w := s.Weights
	p.nonNegFloat("model.weights.browse", w.Browse)
	p.nonNegFloat("model.weights.click", w.Click)
	p.nonNegFloat("model.weights.add_to_cart", w.AddToCart)
	p.nonNegFloat("model.weights.purchase", w.Purchase)
	if !(w.Browse > 0 || w.Click > 0 || w.AddToCart > 0 || w.Purchase > 0) {
		p.add("model.weights", "at least one weight must be greater than 0")
	}
	// The overflow rule implies half_life >= 1m; check both in one place so
	// the message gives the binding limit.
	if s.HalfLife < time.Minute || float64(decayHorizon)/float64(s.HalfLife) >= maxDecayExponent {
		p.add("model.half_life", "must be greater than %v, got %v: weights are stored as w·2^((t−epoch)/half_life) and must not overflow float64 within 30 years of model.epoch",
			decayHorizon/maxDecayExponent, s.HalfLife)
	}
	if _, err := time.Parse(time.RFC3339, s.Epoch); err != nil {
		p.add("model.epoch", "must be an RFC 3339 time such as 2024-01-01T00:00:00Z, got %q", s.Epoch)
	}
	p.minInt("model.user_items_cap", s.UserItemsCap, 1)
	p.minInt("model.user_log_cap", s.UserLogCap, 1)
	p.minInt("model.item_users_cap", s.ItemUsersCap, 1)
	p.minInt("model.cooc_cap", s.CoocCap, 1)
	if p.minInt("model.cooc_history", s.CoocHistory, 1) && s.CoocHistory > s.UserLogCap {
		p.add("model.cooc_history", "must be at most model.user_log_cap (%d), got %d", s.UserLogCap, s.CoocHistory)
	}
	if p.minInt("model.next_window", s.NextWindow, 0) && s.NextWindow > s.UserLogCap {
		p.add("model.next_window", "must be at most model.user_log_cap (%d), got %d", s.UserLogCap, s.NextWindow)
	}
	p.minInt("model.cooc_fold", s.CoocFold, 2)
	p.minInt("model.next_cap", s.NextCap, 1)
	p.minInt("model.trending_cap", s.TrendingCap, 1)
	if s.UserTTL < 0 || (s.UserTTL > 0 && s.UserTTL < time.Second) {
		p.add("model.user_ttl", "must be 0 (never expire) or at least 1s, got %v", s.UserTTL)
	}
	return p.err()
}

// Validate checks the scorer section.
func (s ScorerConfig) Validate() error {
	var p problems
	p.intRange("scorer.top_n", s.TopN, 1, 1000)
	p.minInt("scorer.neighbours", s.Neighbours, 1)
	if s.CandidateUsers < s.Neighbours {
		p.add("scorer.candidate_users", "must be at least scorer.neighbours (%d), got %d", s.Neighbours, s.CandidateUsers)
	}
	p.minInt("scorer.history_items", s.HistoryItems, 1)
	p.minInt("scorer.recent_events", s.RecentEvents, 0)
	p.minInt("scorer.next_items", s.NextItems, 1)
	p.nonNegFloat("scorer.recency_boost", s.RecencyBoost)
	p.oneOf("scorer.user_similarity", s.UserSimilarity, SimilarityCosine, SimilarityPearson)
	p.oneOf("scorer.item_similarity", s.ItemSimilarity, SimilarityCosine, SimilarityJaccard, SimilarityLift)
	p.nonNegFloat("scorer.shrinkage", s.Shrinkage)
	p.minInt("scorer.item_neighbours", s.ItemNeighbours, 0)
	p.minInt("scorer.item_neighbour_budget", s.ItemNeighbourBudget, 0)
	p.minInt("scorer.users_per_item", s.UsersPerItem, 1)
	p.minInt("scorer.neighbour_items", s.NeighbourItems, 1)
	w := s.Weights
	okU := p.nonNegFloat("scorer.weights.user_knn", w.UserKNN)
	okI := p.nonNegFloat("scorer.weights.item_knn", w.ItemKNN)
	okT := p.nonNegFloat("scorer.weights.trending", w.Trending)
	okE := p.nonNegFloat("scorer.weights.ease", w.EASE)
	okC := p.nonNegFloat("scorer.weights.content", w.Content)
	okN := p.nonNegFloat("scorer.weights.new_arrivals", w.NewArrivals)
	okX := p.nonNegFloat("scorer.weights.next_item", w.NextItem)
	okP := p.nonNegFloat("scorer.weights.popular", w.Popular)
	if okU && okI && okT && okE && okC && okN && okX && okP && !(w.UserKNN+w.ItemKNN+w.Trending+w.EASE+w.Content+w.NewArrivals+w.NextItem+w.Popular > 0) {
		p.add("scorer.weights", "sum must be greater than 0")
	}
	p.positiveDur("scorer.list_ttl", s.ListTTL)
	p.nonNegDur("scorer.debounce", s.Debounce)
	p.minInt("scorer.workers", s.Workers, 1)
	if s.ModelName == "" {
		p.add("scorer.model_name", "must not be empty")
	}
	p.positiveDur("scorer.trending_refresh", s.TrendingRefresh)
	p.minInt("scorer.trending_items", s.TrendingItems, 1)
	p.nonNegDur("scorer.neighbour_ttl", s.NeighbourTTL)
	if p.nonNegFloat("scorer.ease_lambda", s.EASELambda) && s.EASELambda == 0 {
		p.add("scorer.ease_lambda", "must be greater than 0")
	}
	p.intRange("scorer.ease_max_items", s.EASEMaxItems, 1, 20000)
	p.intRange("scorer.ease_row_items", s.EASERowItems, 1, 20000)
	p.positiveDur("scorer.ease_refresh", s.EASERefresh)
	p.minInt("scorer.max_per_category", s.MaxPerCategory, 0)
	p.minInt("scorer.content_categories", s.ContentCategories, 1)
	p.minInt("scorer.content_brands", s.ContentBrands, 1)
	p.minInt("scorer.content_candidates", s.ContentCandidates, 1)
	p.positiveDur("scorer.new_arrival_window", s.NewArrivalWindow)
	if p.minInt("scorer.new_arrival_slots", s.NewArrivalSlots, 0) && s.TopN >= 1 && s.NewArrivalSlots > s.TopN {
		p.add("scorer.new_arrival_slots", "must be at most scorer.top_n (%d), got %d", s.TopN, s.NewArrivalSlots)
	}
	if _, err := ParseVariants(s.Variants); err != nil {
		p.add("scorer.variants", "%v", err)
	}
	return p.err()
}

// Validate checks the admin section.
func (s AdminConfig) Validate() error {
	var p problems
	if s.Listen != "" {
		if err := checkHostPort(s.Listen, true); err != nil {
			p.add("admin.listen", "%q: %v (or empty to disable the admin server)", s.Listen, err)
		}
	}
	p.positiveDur("admin.lag_interval", s.LagInterval)
	p.positiveDur("admin.lag_threshold", s.LagThreshold)
	hasPassword := s.Password != "" || s.PasswordFile != ""
	switch {
	case s.Username != "" && !hasPassword:
		p.add("admin.password", "must be set with admin.username (or admin.password_file)")
	case s.Username == "" && hasPassword:
		p.add("admin.username", "must be set with admin.password")
	}
	return p.err()
}

// problems collects validation errors, each prefixed with its key.
type problems struct{ errs []error }

func (p *problems) add(key, format string, args ...any) {
	p.errs = append(p.errs, fmt.Errorf("%s: %s", key, fmt.Sprintf(format, args...)))
}

func (p *problems) err() error { return errors.Join(p.errs...) }

func (p *problems) positiveDur(key string, d time.Duration) {
	if d <= 0 {
		p.add(key, "must be greater than 0, got %v", d)
	}
}

func (p *problems) nonNegDur(key string, d time.Duration) {
	if d < 0 {
		p.add(key, "must not be negative, got %v", d)
	}
}

func (p *problems) minInt(key string, v, lo int) bool {
	if v < lo {
		p.add(key, "must be at least %d, got %d", lo, v)
		return false
	}
	return true
}

func (p *problems) intRange(key string, v, lo, hi int) {
	if v < lo || v > hi {
		p.add(key, "must be between %d and %d, got %d", lo, hi, v)
	}
}

func (p *problems) nonNegFloat(key string, v float64) bool {
	if math.IsNaN(v) || math.IsInf(v, 0) {
		p.add(key, "must be a finite number, got %v", v)
		return false
	}
	if v < 0 {
		p.add(key, "must not be negative, got %v", v)
		return false
	}
	return true
}

func (p *problems) oneOf(key, v string, allowed ...string) {
	for _, a := range allowed {
		if v == a {
			return
		}
	}
	p.add(key, "must be one of %s, got %q", strings.Join(allowed, ", "), v)
}

// kafkaNames checks topic or group names: valid Kafka names and pairwise
// distinct.
func (p *problems) kafkaNames(names []struct{ key, name string }) {
	for i, n := range names {
		if err := checkKafkaName(n.name); err != nil {
			p.add(n.key, "%v", err)
			continue
		}
		for _, m := range names[:i] {
			if m.name == n.name {
				p.add(n.key, "must differ from %s (both are %q)", m.key, n.name)
			}
		}
	}
}

// checkKafkaName applies Kafka's topic name rules, which recstream also
// applies to consumer group names.
func checkKafkaName(s string) error {
	switch {
	case s == "":
		return errors.New("must not be empty")
	case len(s) > 249:
		return fmt.Errorf("must be at most 249 characters, got %d", len(s))
	case s == "." || s == "..":
		return fmt.Errorf("must not be %q", s)
	}
	for _, r := range s {
		if !(r >= 'a' && r <= 'z' || r >= 'A' && r <= 'Z' || r >= '0' && r <= '9' || r == '.' || r == '_' || r == '-') {
			return fmt.Errorf("invalid character %q in %q (allowed: a-z A-Z 0-9 . _ -)", r, s)
		}
	}
	return nil
}

// checkHostPort checks a host:port address. The port must be numeric;
// port 0 and an empty host are accepted only for listen addresses.
func checkHostPort(s string, listen bool) error {
	host, port, err := net.SplitHostPort(s)
	if err != nil {
		return errors.New("want host:port")
	}
	if host == "" && !listen {
		return errors.New("missing host (want host:port)")
	}
	if strings.IndexFunc(host, unicode.IsSpace) >= 0 {
		return errors.New("host must not contain whitespace")
	}
	n, err := strconv.Atoi(port)
	lo := 1
	if listen {
		lo = 0
	}
	if err != nil || n < lo || n > 65535 {
		return fmt.Errorf("invalid port %q", port)
	}
	return nil
}
