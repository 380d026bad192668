package store

import (
	"context"
	"errors"
	"net"
	"strings"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/redis/go-redis/v9"
)

// RedisMetrics measures every command the Redis client sends: latency by
// command and failures by command. The command label takes its values from
// a fixed set (the commands recstream sends, "pipeline" for a whole pipeline
// or transaction, and "other"), so its cardinality is bounded.
type RedisMetrics struct {
	Duration *prometheus.HistogramVec // by command
	Errors   *prometheus.CounterVec   // by command
	Dials    *prometheus.CounterVec   // by result
}

// redisCommands are the command label values; anything else is "other".
var redisCommands = map[string]bool{
	"evalsha": true, "eval": true, "script": true, "get": true, "set": true, "mget": true,
	"lrange": true, "zrange": true, "zrevrange": true, "zrangebyscore": true, "zscore": true,
	"zmscore": true, "hget": true, "hgetall": true, "hmget": true, "ping": true, "del": true,
	"exists": true, "expire": true, "pipeline": true, "info": true, "hello": true, "client": true,
}

// NewRedisMetrics registers the Redis client metrics on reg (nil: not
// registered).
func NewRedisMetrics(reg prometheus.Registerer) *RedisMetrics {
	m := &RedisMetrics{
		Duration: prometheus.NewHistogramVec(prometheus.HistogramOpts{
			Name:    "recstream_redis_command_duration_seconds",
			Help:    "Latency of Redis commands as the client sees it (a pipeline is observed once, as command=\"pipeline\").",
			Buckets: prometheus.ExponentialBuckets(0.0001, 2, 16),
		}, []string{"command"}),
		Errors: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_redis_errors_total",
			Help: "Redis commands that failed (network errors, timeouts, error replies other than NOSCRIPT), by command.",
		}, []string{"command"}),
		Dials: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_redis_dials_total",
			Help: "New connections opened to Redis, by result.",
		}, []string{"result"}),
	}
	for _, r := range []string{"ok", "error"} {
		m.Dials.WithLabelValues(r)
	}
	for c := range redisCommands {
		m.Errors.WithLabelValues(c)
	}
	m.Errors.WithLabelValues("other")
	if reg != nil {
		reg.MustRegister(m.Duration, m.Errors, m.Dials)
	}
	return m
}

// Hook returns the go-redis hook that records into m; add it with
// client.AddHook.
func (m *RedisMetrics) Hook() redis.Hook { return redisHook{m} }

// InstrumentClient adds m's hook to a client (one node, Cluster or
// Sentinel: the hook sits in front of the client's command processing).
func (m *RedisMetrics) InstrumentClient(rdb redis.UniversalClient) {
	rdb.AddHook(m.Hook())
}

type redisHook struct{ m *RedisMetrics }

func (h redisHook) DialHook(next redis.DialHook) redis.DialHook {
	return func(ctx context.Context, network, addr string) (net.Conn, error) {
		c, err := next(ctx, network, addr)
		if err != nil {
			h.m.Dials.WithLabelValues("error").Inc()
		} else {
			h.m.Dials.WithLabelValues("ok").Inc()
		}
		return c, err
	}
}

func (h redisHook) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		start := time.Now()
		err := next(ctx, cmd)
		name := commandLabel(cmd.Name())
		h.m.Duration.WithLabelValues(name).Observe(time.Since(start).Seconds())
		if isFailure(err) && !handshake(name) {
			h.m.Errors.WithLabelValues(name).Inc()
		}
		return err
	}
}

func (h redisHook) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		setup := true
		for _, c := range cmds {
			setup = setup && handshake(commandLabel(c.Name()))
		}
		if setup { // a new connection's HELLO and CLIENT SETINFO
			return next(ctx, cmds)
		}
		start := time.Now()
		err := next(ctx, cmds)
		h.m.Duration.WithLabelValues("pipeline").Observe(time.Since(start).Seconds())
		failed := false
		for _, c := range cmds {
			if name := commandLabel(c.Name()); isFailure(c.Err()) && !handshake(name) {
				h.m.Errors.WithLabelValues(name).Inc()
				failed = true
			}
		}
		if !failed && isFailure(err) {
			h.m.Errors.WithLabelValues("pipeline").Inc()
		}
		return err
	}
}

func commandLabel(name string) string {
	n := strings.ToLower(name)
	if redisCommands[n] {
		return n
	}
	switch n {
	case "multi", "exec":
		return "pipeline"
	}
	return "other"
}

// handshake reports whether a command is part of go-redis's connection
// set-up (HELLO, CLIENT SETINFO), whose error replies from older servers
// the client ignores.
func handshake(label string) bool { return label == "hello" || label == "client" }

// isFailure reports whether err is a failure worth counting: not a miss
// (redis.Nil) and not NOSCRIPT, which the store answers by loading scripts.
func isFailure(err error) bool {
	if err == nil || errors.Is(err, redis.Nil) {
		return false
	}
	return !strings.HasPrefix(err.Error(), "NOSCRIPT")
}

// CoocMetrics counts what happens to co-occurrence rows (cooc.go).
type CoocMetrics struct {
	Folds     *prometheus.CounterVec // by result
	Malformed prometheus.Counter
}

// NewCoocMetrics registers the co-occurrence row metrics on reg (nil: not
// registered).
func NewCoocMetrics(reg prometheus.Registerer) *CoocMetrics {
	m := &CoocMetrics{
		Folds: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_cooc_folds_total",
			Help: "Co-occurrence rows folded, by result: written, or lost (another process folded the row first; harmless).",
		}, []string{"result"}),
		Malformed: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_cooc_malformed_entries_total",
			Help: "Malformed co-occurrence row entries left out by readers or dropped by folds; only a bug or a hand edit makes one.",
		}),
	}
	for _, r := range []string{"written", "lost"} {
		m.Folds.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Folds, m.Malformed)
	}
	return m
}

// UserMetrics counts how the user half reached each user's state and
// the copies kept in memory (usercache.go).
type UserMetrics struct {
	Users   *prometheus.CounterVec // by copy: memory or read
	Refused prometheus.Counter
	Copies  prometheus.Gauge
	Evicted *prometheus.CounterVec // by reason: count, idle, memory or revoked
}

// NewUserMetrics registers the user half's metrics on reg (nil: not
// registered).
func NewUserMetrics(reg prometheus.Registerer) *UserMetrics {
	m := &UserMetrics{
		Users: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_ingest_users_total",
			Help: "Users whose events a batch applied, by copy: memory (the copy kept since an earlier batch) or read (read from Redis first).",
		}, []string{"copy"}),
		Refused: prometheus.NewCounter(prometheus.CounterOpts{
			Name: "recstream_ingest_user_writes_refused_total",
			Help: "Guarded user writes refused because another writer changed the user first (an erasure, another owner of the partition, a batch of another partition of the user, keys expired); the user is read again and its events applied again.",
		}),
		Copies: prometheus.NewGauge(prometheus.GaugeOpts{
			Name: "recstream_ingest_user_copies",
			Help: "Users whose copy the ingest role keeps in memory between batches, all partitions.",
		}),
		Evicted: prometheus.NewCounterVec(prometheus.CounterOpts{
			Name: "recstream_ingest_user_copies_evicted_total",
			Help: "Users' copies dropped from memory (Redis keeps the users), by reason: count (ingest.user_cache), idle (ingest.user_cache_idle), memory (live heap over three quarters of the memory limit) or revoked (the partition was assigned elsewhere).",
		}, []string{"reason"}),
	}
	for _, c := range []string{"memory", "read"} {
		m.Users.WithLabelValues(c)
	}
	for _, r := range []string{"count", "idle", "memory", "revoked"} {
		m.Evicted.WithLabelValues(r)
	}
	if reg != nil {
		reg.MustRegister(m.Users, m.Refused, m.Copies, m.Evicted)
	}
	return m
}
