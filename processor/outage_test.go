package processor_test

import (
	"context"
	"errors"
	"io"
	"net/http"
	"runtime/pprof"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/prometheus/client_golang/prometheus"
	"github.com/twmb/franz-go/pkg/kfake"

	"github.com/recstream/recstream/config"
	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/kafkatest"
	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/processor"
)

// probe GETs path with the 1 s timeout of a Kubernetes probe.
func probe(t *testing.T, addr, path string) (int, string, time.Duration) {
	t.Helper()
	c := &http.Client{Timeout: time.Second}
	start := time.Now()
	res, err := c.Get("http://" + addr + path)
	if err != nil {
		t.Fatalf("GET %s: %v (after %s)", path, err, time.Since(start).Round(time.Millisecond))
	}
	defer res.Body.Close()
	b, _ := io.ReadAll(res.Body)
	return res.StatusCode, string(b), time.Since(start)
}

// The admin server answers from the start whatever is down, and /readyz
// names the root cause: Redis, then the broker. The broker comes up
// without its topics: with kafka.create_topics (the default) start-up waits
// for it and creates them instead of exiting.
func TestAdminAnswersDuringOutage(t *testing.T) {
	rs := redistest.Start(t)
	rs.Stop(t)
	kport := freePort(t)
	cfg := testConfig([]string{"127.0.0.1:" + strconv.Itoa(kport)}, rs.Addr)
	cfg.Kafka.CreateTopics = true
	cfg.Kafka.Partitions = 2
	cfg.Admin.Listen = "127.0.0.1:0"
	cfg.Admin.LagInterval = 500 * time.Millisecond
	reg := prometheus.NewRegistry()
	p, err := processor.New(cfg, processor.Deps{Registerer: reg, Gatherer: reg})
	if err != nil {
		t.Fatal(err)
	}
	ln, err := p.Listen()
	if err != nil {
		t.Fatal(err)
	}
	addr := ln.String()
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	defer func() {
		cancel()
		<-done
	}()

	// Redis and the broker down.
	for _, c := range []struct {
		path, want string
		code       int
	}{
		{"/healthz", "ok", 200},
		{"/readyz", "not ready: redis: unreachable: dial tcp", 503},
		{"/metrics", `recstream_ready{role="score"} 0`, 200},
		{"/metrics", `recstream_ready{role="ingest"} 0`, 200},
		{"/", "redis: unreachable", 200},
	} {
		code, body, took := probe(t, addr, c.path)
		t.Logf("GET %s with Redis and Kafka down: %d in %s", c.path, code, took.Round(time.Millisecond))
		if code != c.code || !strings.Contains(body, c.want) || took > time.Second {
			t.Errorf("GET %s with Redis and Kafka down: %d in %s, want %d with %q:\n%.300s", c.path, code, took.Round(time.Millisecond), c.code, c.want, body)
		}
	}

	// Redis back, the broker still down: the broker is the reason.
	rs.Restart(t)
	waitFor(t, 10*time.Second, "/readyz naming the broker", func() bool {
		code, body, _ := probe(t, addr, "/readyz")
		return code == 503 && strings.HasPrefix(body, "not ready: broker: unreachable")
	})

	// The broker comes up empty: the topics are created and the roles start.
	kf := kafkatest.StartOpts(t, 1, nil, kfake.Ports(kport))
	waitFor(t, 60*time.Second, "ready", func() bool {
		code, _, _ := probe(t, addr, "/readyz")
		return code == 200
	})
	if parts := kf.Partitions(t, cfg.Kafka.EventsTopic); len(parts) != cfg.Kafka.Partitions {
		t.Errorf("events topic has %d partitions, want %d (kafka.partitions)", len(parts), cfg.Kafka.Partitions)
	}
	waitFor(t, 5*time.Second, "recstream_ready 1 for both roles", func() bool {
		_, body, _ := probe(t, addr, "/metrics")
		return strings.Contains(body, `recstream_ready{role="score"} 1`) && strings.Contains(body, `recstream_ready{role="ingest"} 1`)
	})
}

// With the broker down, a shutdown ends within run.shutdown_timeout.
func TestShutdownWithBrokerDown(t *testing.T) {
	rs := redistest.Start(t)
	cfg := testConfig([]string{"127.0.0.1:" + strconv.Itoa(freePort(t))}, rs.Addr)
	cfg.Run.ShutdownTimeout = 3 * time.Second
	p, err := processor.New(cfg, processor.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	waitFor(t, 10*time.Second, "broker unreachable", func() bool {
		err := p.Ready(context.Background())
		return err != nil && strings.HasPrefix(err.Error(), "broker: unreachable")
	})
	time.Sleep(2 * time.Second) // the readers retry their dials meanwhile
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("shutdown took %s: %v", took.Round(time.Millisecond), err)
		if err != nil && !errors.Is(err, context.Canceled) {
			var b strings.Builder
			_ = pprof.Lookup("goroutine").WriteTo(&b, 1)
			t.Log(b.String())
			t.Errorf("Run: %v", err)
		}
	case <-time.After(cfg.Run.ShutdownTimeout + time.Second):
		t.Fatalf("Run did not return %s after the shutdown began (run.shutdown_timeout %s)", time.Since(start).Round(time.Millisecond), cfg.Run.ShutdownTimeout)
	}
}

// With Redis down and a batch retried, a shutdown gives up the batch in
// time and ends cleanly within run.shutdown_timeout.
func TestShutdownWithRedisDown(t *testing.T) {
	cfg0 := config.Default()
	kf := kafkatest.Start(t, 2, cfg0.Topics()...)
	rs := redistest.Start(t)
	cfg := testConfig(kf.Brokers, rs.Addr)
	cfg.Run.ShutdownTimeout = 3 * time.Second
	p, err := processor.New(cfg, processor.Deps{Registerer: prometheus.NewRegistry()})
	if err != nil {
		t.Fatal(err)
	}
	ctx, cancel := context.WithCancel(context.Background())
	done := make(chan error, 1)
	go func() { done <- p.Run(ctx) }()
	pl := &pipeline{t: t, kf: kf, p: p, cfg: cfg}
	pl.produce(event.Event{UserID: "u1", ItemID: "i1", Type: event.Click, TS: time.Now().UnixMilli()})
	waitFor(t, 60*time.Second, "the first event consumed", func() bool { return pl.consumed() == 1 })
	rs.Stop(t)
	pl.produce(event.Event{UserID: "u2", ItemID: "i1", Type: event.Click, TS: time.Now().UnixMilli()})
	waitFor(t, 30*time.Second, "a batch retried", func() bool { return !p.Ingest.Ready() })
	start := time.Now()
	cancel()
	select {
	case err := <-done:
		took := time.Since(start)
		t.Logf("shutdown with a batch retried against a stopped Redis took %s: %v", took.Round(time.Millisecond), err)
		if err != nil && !errors.Is(err, context.Canceled) {
			t.Errorf("Run: %v", err)
		}
		if took > cfg.Run.ShutdownTimeout {
			t.Errorf("shutdown took %s, run.shutdown_timeout %s", took, cfg.Run.ShutdownTimeout)
		}
	case <-time.After(cfg.Run.ShutdownTimeout + time.Second):
		t.Fatalf("Run did not return %s after the shutdown began", time.Since(start).Round(time.Millisecond))
	}
}
