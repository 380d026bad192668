package config

import (
	"time"
)

// Role names accepted in run.roles.
const (
	RoleIngest = "ingest"
	RoleScore  = "score"
	// RoleItems is the item owner (ingest.item_owner): it consumes the
	// repartition topic in kafka.item_owner_group. Without
	// ingest.item_owner it runs nothing.
	RoleItems = "items"
)

// Similarity names accepted in scorer.user_similarity and
// scorer.item_similarity.
const (
	SimilarityCosine  = "cosine"
	SimilarityPearson = "pearson"
	SimilarityJaccard = "jaccard"
	SimilarityLift    = "lift"
)

// Config is the complete recstream configuration. Each field is one
// top-level section of the YAML file.
type Config struct {
	Run     RunConfig     `yaml:"run"`
	Log     LogConfig     `yaml:"log"`
	Kafka   KafkaConfig   `yaml:"kafka"`
	Redis   RedisConfig   `yaml:"redis"`
	Ingest  IngestConfig  `yaml:"ingest"`
	Model   ModelConfig   `yaml:"model"`
	Scorer  ScorerConfig  `yaml:"scorer"`
	Catalog CatalogConfig `yaml:"catalog"`
	Admin   AdminConfig   `yaml:"admin"`
	// Privacy configures pseudonymous ids and erasure (config/security.go).
	Privacy PrivacyConfig `yaml:"privacy"`
	// Attribution configures impressions, attribution and impression
	// discounting (config/attribution.go).
	Attribution AttributionConfig `yaml:"attribution"`
}

// Default returns the configuration with every key at its default value.
func Default() Config {
	var c Config
	c.Run.SetDefaults()
	c.Log.SetDefaults()
	c.Kafka.SetDefaults()
	c.Redis.SetDefaults()
	c.Ingest.SetDefaults()
	c.Model.SetDefaults()
	c.Scorer.SetDefaults()
	c.Catalog.SetDefaults()
	c.Admin.SetDefaults()
	c.Privacy.SetDefaults()
	c.Attribution.SetDefaults()
	return c
}

// RunConfig selects what this process does.
type RunConfig struct {
	// Roles lists the roles this process runs: any of RoleIngest,
	// RoleScore and RoleItems.
	Roles []string `yaml:"roles"`
	// ShutdownTimeout bounds the graceful shutdown after a signal.
	ShutdownTimeout time.Duration `yaml:"shutdown_timeout"`
	// MemoryLimitMB is the Go runtime's soft memory limit for `recstream
	// run`, in MiB (runtime/debug.SetMemoryLimit): the garbage collector
	// works harder as the process nears it, and the ingest role drops
	// users' copies (Ingest.UserCache) while the live heap is above three
	// quarters of it. 0 leaves the runtime's own (the GOMEMLIMIT
	// environment variable, or none).
	MemoryLimitMB int `yaml:"memory_limit_mb"`
}

// SetDefaults sets every run key to its default.
func (s *RunConfig) SetDefaults() {
	*s = RunConfig{
		Roles:           []string{RoleIngest, RoleScore, RoleItems},
		ShutdownTimeout: 15 * time.Second,
	}
}

// Has reports whether role is listed in Roles.
func (s RunConfig) Has(role string) bool {
	for _, r := range s.Roles {
		if r == role {
			return true
		}
	}
	return false
}

// LogConfig configures the process logger.
type LogConfig struct {
	// Level is one of debug, info, warn, error.
	Level string `yaml:"level"`
	// Format is text or json.
	Format string `yaml:"format"`
}

// SetDefaults sets every log key to its default.
func (s *LogConfig) SetDefaults() {
	*s = LogConfig{Level: "info", Format: "text"}
}

// KafkaConfig configures the Kafka clients, topics and consumer groups.
type KafkaConfig struct {
	Brokers      []string `yaml:"brokers"`
	EventsTopic  string   `yaml:"events_topic"`
	DLQTopic     string   `yaml:"dlq_topic"`
	RefreshTopic string   `yaml:"refresh_topic"`
	ItemsTopic   string   `yaml:"items_topic"`
	IngestGroup  string   `yaml:"ingest_group"`
	ScoreGroup   string   `yaml:"score_group"`
	// ItemUpdatesTopic is the repartition topic of ingest.item_owner:
	// item contributions keyed by item, from the ingest role to the item
	// owners.
	ItemUpdatesTopic string `yaml:"item_updates_topic"`
	// ItemOwnerGroup is the consumer group of the item owners (role
	// items).
	ItemOwnerGroup   string        `yaml:"item_owner_group"`
	ClientID         string        `yaml:"client_id"`
	SessionTimeout   time.Duration `yaml:"session_timeout"`
	RebalanceTimeout time.Duration `yaml:"rebalance_timeout"`
	MaxWait          time.Duration `yaml:"max_wait"`
	// CreateTopics creates missing topics at start-up.
	CreateTopics bool `yaml:"create_topics"`
	// Partitions is the partition count of topics created at start-up.
	Partitions int `yaml:"partitions"`
	// ControlTopic carries admin commands such as erasing a user; empty
	// disables the control consumer.
	ControlTopic string     `yaml:"control_topic"`
	TLS          TLSConfig  `yaml:"tls"`
	SASL         SASLConfig `yaml:"sasl"`
}

// Topics are the topics a processor with this configuration uses: those
// kafka.create_topics creates.
func (c Config) Topics() []string {
	k := c.Kafka
	topics := []string{k.EventsTopic, k.DLQTopic, k.RefreshTopic, k.ItemsTopic}
	if c.Ingest.ItemOwner {
		topics = append(topics, k.ItemUpdatesTopic)
	}
	if k.ControlTopic != "" {
		topics = append(topics, k.ControlTopic)
	}
	return topics
}

// SetDefaults sets every kafka key to its default.
func (s *KafkaConfig) SetDefaults() {
	*s = KafkaConfig{
		Brokers:          []string{"localhost:9092"},
		EventsTopic:      "events",
		DLQTopic:         "events.dlq",
		RefreshTopic:     "recstream.refresh",
		ItemsTopic:       "items",
		IngestGroup:      "recstream-ingest",
		ScoreGroup:       "recstream-score",
		ItemUpdatesTopic: "recstream.item-updates",
		ItemOwnerGroup:   "recstream-items",
		ClientID:         "recstream",
		SessionTimeout:   10 * time.Second,
		RebalanceTimeout: 10 * time.Second,
		MaxWait:          200 * time.Millisecond,
		CreateTopics:     true,
		Partitions:       8,
		ControlTopic:     "recstream.control",
	}
}

// RedisConfig configures the Redis client. One address with an empty
// MasterName is a single node, several addresses with an empty MasterName
// are a Redis Cluster, and a non-empty MasterName selects Sentinel with
// Addrs as the sentinels.
type RedisConfig struct {
	Addrs    []string `yaml:"addrs"`
	Username string   `yaml:"username"`
	Password string   `yaml:"password" secret:"true"`
	DB       int      `yaml:"db"`
	// KeyPrefix is prepended to every key recstream writes.
	KeyPrefix    string        `yaml:"key_prefix"`
	DialTimeout  time.Duration `yaml:"dial_timeout"`
	ReadTimeout  time.Duration `yaml:"read_timeout"`
	WriteTimeout time.Duration `yaml:"write_timeout"`
	// PoolSize is the connection pool size; 0 means the client default.
	PoolSize int `yaml:"pool_size"`
	// MaxRetries is the retry count per command; -1 disables retries.
	MaxRetries int    `yaml:"max_retries"`
	MasterName string `yaml:"master_name"`
	// PasswordFile, when set, is read at start-up and replaces Password.
	PasswordFile string    `yaml:"password_file"`
	TLS          TLSConfig `yaml:"tls"`
	// SentinelUsername and SentinelPassword authenticate to the sentinels
	// (their own ACL user or requirepass), which may differ from the data
	// nodes' Username and Password. Only with MasterName.
	SentinelUsername string `yaml:"sentinel_username"`
	SentinelPassword string `yaml:"sentinel_password" secret:"true"`
	// SentinelPasswordFile, when set, is read at start-up and replaces
	// SentinelPassword.
	SentinelPasswordFile string `yaml:"sentinel_password_file"`
}

// SetDefaults sets every redis key to its default.
func (s *RedisConfig) SetDefaults() {
	*s = RedisConfig{
		Addrs:        []string{"127.0.0.1:6379"},
		KeyPrefix:    "rs:",
		DialTimeout:  5 * time.Second,
		ReadTimeout:  3 * time.Second,
		WriteTimeout: 3 * time.Second,
		MaxRetries:   3,
	}
}

// IngestConfig configures the ingest role (events topic -> Redis).
type IngestConfig struct {
	BatchMaxEvents int           `yaml:"batch_max_events"`
	BatchMaxWait   time.Duration `yaml:"batch_max_wait"`
	// ItemWindow is how long the item half of applied batches (item
	// co-occurrence rows, recent users, popularity, trending) is collected
	// before it is written; offsets are committed after that write. 0
	// writes it with every batch.
	ItemWindow time.Duration `yaml:"item_window"`
	// ItemWindowEvents writes the collected item half early once it holds
	// this many events.
	ItemWindowEvents int `yaml:"item_window_events"`
	MaxMessageBytes  int `yaml:"max_message_bytes"`
	// MaxFuture is how far ahead of the local clock an event timestamp may be.
	MaxFuture time.Duration `yaml:"max_future"`
	// Workers is the number of apply workers; 0 lets the consumer use one
	// per assigned partition.
	Workers int `yaml:"workers"`
	// UserCache is how many users' state (weights, log, meta, purchases,
	// attribution state) is kept in memory between batches, per source
	// partition, the least recently used dropped first; 0 reads every
	// batch's users from Redis.
	UserCache int `yaml:"user_cache"`
	// UserCacheIdle drops a user's copy once no batch has used it for
	// this long; 0 keeps copies until UserCache or the memory limit
	// (run.memory_limit_mb) drops them.
	UserCacheIdle time.Duration `yaml:"user_cache_idle"`
	// ItemOwner (the default) sends the item half of each batch
	// (co-occurrence and next-item rows, recent users, degree,
	// popularity, trending) through kafka.item_updates_topic to the item
	// owners (role items), which keep items in memory and write them
	// behind every ItemFlushInterval; false writes it from the ingest
	// role with one script per item.
	ItemOwner bool `yaml:"item_owner"`
	// ItemFlushInterval is how long an item owner keeps contributions in
	// memory before it writes the changed items (and commits).
	ItemFlushInterval time.Duration `yaml:"item_flush_interval"`
	// ItemOwnerIdle drops an item from an item owner's memory once no
	// contribution reached it for this long; 0 keeps items until their
	// partition is assigned elsewhere.
	ItemOwnerIdle time.Duration `yaml:"item_owner_idle"`
	// ItemOwnerCache bounds the items an item owner keeps in memory
	// between flushes, the least recently reached dropped first; 0: no
	// bound.
	ItemOwnerCache int `yaml:"item_owner_cache"`
}

// SetDefaults sets every ingest key to its default.
func (s *IngestConfig) SetDefaults() {
	*s = IngestConfig{
		BatchMaxEvents:    1000,
		BatchMaxWait:      20 * time.Millisecond,
		ItemWindow:        0,
		ItemWindowEvents:  20000,
		MaxMessageBytes:   65536,
		MaxFuture:         time.Hour,
		Workers:           0,
		UserCache:         250,
		UserCacheIdle:     5 * time.Minute,
		ItemOwner:         true,
		ItemFlushInterval: 500 * time.Millisecond,
		ItemOwnerIdle:     5 * time.Minute,
		ItemOwnerCache:    100000,
	}
}

// EventWeights is the interaction weight of each event type.
type EventWeights struct {
	Browse    float64 `yaml:"browse"`
	Click     float64 `yaml:"click"`
	AddToCart float64 `yaml:"add_to_cart"`
	Purchase  float64 `yaml:"purchase"`
}

// ByName returns the weights keyed by event type name (the YAML key names:
// browse, click, add_to_cart, purchase).
func (w EventWeights) ByName() map[string]float64 {
	return map[string]float64{
		"browse":      w.Browse,
		"click":       w.Click,
		"add_to_cart": w.AddToCart,
		"purchase":    w.Purchase,
	}
}

// ModelConfig configures the decayed interaction model kept in Redis.
type ModelConfig struct {
	Weights EventWeights `yaml:"weights"`
	// HalfLife is the time after which an interaction counts half.
	HalfLife time.Duration `yaml:"half_life"`
	// Epoch is the RFC 3339 reference time of the forward-decay scaling;
	// see EpochTime.
	Epoch        string `yaml:"epoch"`
	UserItemsCap int    `yaml:"user_items_cap"`
	UserLogCap   int    `yaml:"user_log_cap"`
	ItemUsersCap int    `yaml:"item_users_cap"`
	CoocCap      int    `yaml:"cooc_cap"`
	CoocHistory  int    `yaml:"cooc_history"`
	// CoocFold is how many entries a co-occurrence or next-item row
	// collects before the processor folds them into one.
	CoocFold int `yaml:"cooc_fold"`
	// NextWindow is how many of the user's latest distinct earlier items
	// each event adds a transition from (next-item rows); 0 keeps none.
	NextWindow  int `yaml:"next_window"`
	NextCap     int `yaml:"next_cap"`
	TrendingCap int `yaml:"trending_cap"`
	// UserTTL expires idle per-user state; 0 never expires it.
	UserTTL time.Duration `yaml:"user_ttl"`
}

// SetDefaults sets every model key to its default.
func (s *ModelConfig) SetDefaults() {
	*s = ModelConfig{
		Weights:      EventWeights{Browse: 1, Click: 2, AddToCart: 4, Purchase: 8},
		HalfLife:     336 * time.Hour,
		Epoch:        "2024-01-01T00:00:00Z",
		UserItemsCap: 200,
		UserLogCap:   64,
		ItemUsersCap: 200,
		CoocCap:      200,
		CoocHistory:  20,
		CoocFold:     32,
		NextWindow:   3,
		NextCap:      300,
		TrendingCap:  10000,
		UserTTL:      720 * time.Hour,
	}
}

// EpochTime returns Epoch parsed as RFC 3339. It returns the zero time if
// Epoch does not parse; Validate rejects such a configuration.
func (s ModelConfig) EpochTime() time.Time {
	t, err := time.Parse(time.RFC3339, s.Epoch)
	if err != nil {
		return time.Time{}
	}
	return t
}

// ScorerWeights is the blend weight of each recommendation source; 0
// turns a source off (at least one must be greater than 0).
type ScorerWeights struct {
	UserKNN  float64 `yaml:"user_knn"`
	ItemKNN  float64 `yaml:"item_knn"`
	Trending float64 `yaml:"trending"`
	// Content weighs the content-based source (needs the catalog).
	Content float64 `yaml:"content"`
	// NewArrivals weighs new items matching the user's profile.
	NewArrivals float64 `yaml:"new_arrivals"`
	// EASE is the weight of the background-refreshed EASE item model.
	EASE float64 `yaml:"ease"`
	// NextItem weighs the items users moved to after the user's latest
	// items (needs model.next_window > 0).
	NextItem float64 `yaml:"next_item"`
	// Popular weighs the fallback prior: every candidate and every item
	// asked to be ranked scores its decayed popularity (within the user's
	// categories when the catalog has them), and lists are filled to
	// top_n with the most popular items.
	Popular float64 `yaml:"popular"`
}

// ScorerConfig configures the score role (refresh topic -> per-user lists).
type ScorerConfig struct {
	TopN           int `yaml:"top_n"`
	Neighbours     int `yaml:"neighbours"`
	CandidateUsers int `yaml:"candidate_users"`
	HistoryItems   int `yaml:"history_items"`
	// RecentEvents is how many of the user's latest events seed the kNN
	// sources besides the strongest items, and the next-item source; 0:
	// none.
	RecentEvents int `yaml:"recent_events"`
	// NextItems is how many of the strongest transitions of each of the
	// user's latest items the next-item source reads.
	NextItems int `yaml:"next_items"`
	// RecencyBoost multiplies the seed weight of the latest item by
	// 1+boost (0.7 less per step back); 0 disables it.
	RecencyBoost   float64       `yaml:"recency_boost"`
	UserSimilarity string        `yaml:"user_similarity"`
	ItemSimilarity string        `yaml:"item_similarity"`
	Shrinkage      float64       `yaml:"shrinkage"`
	Weights        ScorerWeights `yaml:"weights"`
	ExcludeSeen    bool          `yaml:"exclude_seen"`
	ListTTL        time.Duration `yaml:"list_ttl"`
	// Debounce is how long refresh requests for one user are coalesced.
	Debounce        time.Duration `yaml:"debounce"`
	Workers         int           `yaml:"workers"`
	ModelName       string        `yaml:"model_name"`
	TrendingRefresh time.Duration `yaml:"trending_refresh"`
	// TrendingItems is how many of the most trending items the scorer
	// reads: the trending and popular sources' candidates and the
	// anonymous lists.
	TrendingItems int `yaml:"trending_items"`
	// NeighbourTTL is how long the scorer reuses what it read of other
	// users and items (neighbour vectors, co-occurrence rows, recent users
	// and degrees of items) across the users it rescores; 0 rereads them
	// every time. An erasure's rescoring waits at least this long.
	NeighbourTTL time.Duration `yaml:"neighbour_ttl"`
	// EASELambda is the L2 regularisation of the EASE item model.
	EASELambda float64 `yaml:"ease_lambda"`
	// EASEMaxItems caps the EASE model to the items with the most users.
	EASEMaxItems int `yaml:"ease_max_items"`
	// EASERowItems is how many weights of each item the EASE model keeps.
	EASERowItems int `yaml:"ease_row_items"`
	// EASERefresh is how often the EASE model is recomputed.
	EASERefresh time.Duration `yaml:"ease_refresh"`
	// MaxPerCategory caps the items of one category in a list; 0: no cap.
	MaxPerCategory int `yaml:"max_per_category"`
	// ContentCategories and ContentBrands are how many of the profile's
	// strongest categories and brands give content candidates, and
	// ContentCandidates how many of the newest items each gives.
	ContentCategories int `yaml:"content_categories"`
	ContentBrands     int `yaml:"content_brands"`
	ContentCandidates int `yaml:"content_candidates"`
	// NewArrivalWindow is how long after created_at an item is new.
	NewArrivalWindow time.Duration `yaml:"new_arrival_window"`
	// NewArrivalSlots reserves places at the end of each list for the best
	// matching new arrivals; 0: none.
	NewArrivalSlots int `yaml:"new_arrival_slots"`
	// Variants lists A/B variants as "name:share[:source=weight;...]";
	// empty: one configuration for everyone.
	Variants []string `yaml:"variants"`
	// VariantSalt salts the hash that assigns users to variants.
	VariantSalt string `yaml:"variant_salt"`
	// ItemNeighbours is how many co-occurring items item-kNN reads per
	// seed at least; 0 reads whole rows (at most model.cooc_cap items
	// plus the deltas since the last fold).
	ItemNeighbours int `yaml:"item_neighbours"`
	// ItemNeighbourBudget is how many co-occurring items item-kNN reads
	// per user, shared among the seeds: a user with few seeds reads each
	// row deeper than ItemNeighbours. 0 never reads deeper.
	ItemNeighbourBudget int `yaml:"item_neighbour_budget"`
	// UsersPerItem is how many recent users of each seed item user-kNN
	// reads to find candidate neighbours.
	UsersPerItem int `yaml:"users_per_item"`
	// NeighbourItems is how many of each neighbour's strongest items
	// user-kNN reads.
	NeighbourItems int `yaml:"neighbour_items"`
}

// SetDefaults sets every scorer key to its default.
func (s *ScorerConfig) SetDefaults() {
	*s = ScorerConfig{
		TopN:            20,
		Neighbours:      30,
		CandidateUsers:  100,
		HistoryItems:    20,
		RecentEvents:    10,
		NextItems:       300,
		RecencyBoost:    2,
		UserSimilarity:  SimilarityCosine,
		ItemSimilarity:  SimilarityCosine,
		Shrinkage:       0,
		Weights:         ScorerWeights{UserKNN: 1.0, ItemKNN: 1.0, Trending: 0.05, EASE: 0.3, Content: 0.05, NewArrivals: 0.3, NextItem: 1.0, Popular: 0.01},
		ExcludeSeen:     true,
		ListTTL:         168 * time.Hour,
		Debounce:        100 * time.Millisecond,
		Workers:         8,
		ModelName:       "hybrid-v1",
		TrendingRefresh: time.Second,
		TrendingItems:   200,
		NeighbourTTL:    5 * time.Second,
		EASELambda:      300,
		EASEMaxItems:    4000,
		EASERowItems:    400,
		EASERefresh:     10 * time.Minute,

		ContentCategories: 3,
		ContentBrands:     2,
		ContentCandidates: 100,
		NewArrivalWindow:  168 * time.Hour,
		NewArrivalSlots:   2,
		Variants:          []string{},
		VariantSalt:       "recstream",

		ItemNeighbours:      50,
		ItemNeighbourBudget: 1000,
		UsersPerItem:        50,
		NeighbourItems:      200,
	}
}

// CatalogConfig configures the item catalog (kafka.items_topic).
type CatalogConfig struct {
	// Enabled consumes the catalog: the ingest role stores records in
	// Redis, the score role keeps an in-memory index.
	Enabled bool `yaml:"enabled"`
	// Group is the consumer group of the ingest role's catalog writer.
	Group string `yaml:"group"`
}

// SetDefaults sets every catalog key to its default.
func (s *CatalogConfig) SetDefaults() {
	*s = CatalogConfig{Enabled: true, Group: "recstream-catalog"}
}

// AdminConfig configures the admin HTTP server (metrics, health).
type AdminConfig struct {
	// Listen is the host:port to listen on; empty disables the server.
	Listen string `yaml:"listen"`
	// LagInterval is how often consumer lag, group assignment and broker
	// reachability are polled from the broker (also the /readyz broker
	// check's cache period).
	LagInterval time.Duration `yaml:"lag_interval"`
	// LagThreshold is the age of a partition's oldest unconsumed message
	// above which the status page shows it lagging.
	LagThreshold time.Duration `yaml:"lag_threshold"`
	// Token, when set, lets a request with "Authorization: Bearer <token>"
	// read users' events and lists (the status page's lookup and every
	// route under /api/v1/users/).
	Token string `yaml:"token" secret:"true"`
	// TokenFile, when set, is read at start-up and replaces Token.
	TokenFile string `yaml:"token_file"`
	// Username and Password, when set, let a request with HTTP basic
	// authentication read users' events and lists (a browser asks for them
	// on the status page).
	Username string `yaml:"username"`
	Password string `yaml:"password" secret:"true"`
	// PasswordFile, when set, is read at start-up and replaces Password.
	PasswordFile string `yaml:"password_file"`
	// AnonymousUserLookup lets anyone who reaches the admin server read
	// users' events and lists, without credentials (the demo). Without it
	// and without credentials those routes answer 403.
	AnonymousUserLookup bool `yaml:"anonymous_user_lookup"`
}

// SetDefaults sets every admin key to its default.
func (s *AdminConfig) SetDefaults() {
	*s = AdminConfig{Listen: ":9464", LagInterval: 5 * time.Second, LagThreshold: 10 * time.Second}
}
