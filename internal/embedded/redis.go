package embedded

import (
	"context"
	"fmt"
	"os"
	"sync"
	"time"

	"github.com/alicebob/miniredis/v2"

	"github.com/recstream/recstream/internal/redistest/redisproc"
)

// Kinds of embedded Redis.
const (
	KindRedisServer = "redis-server"
	KindMiniredis   = "miniredis"
)

// Redis is a running Redis-compatible server.
type Redis struct {
	Addr string // 127.0.0.1:port
	Kind string // KindRedisServer or KindMiniredis
	// Fallback says why redis-server was not used when Kind is
	// KindMiniredis (not on PATH, or it failed to start).
	Fallback error
	// Close stops the server and removes its files.
	Close func() error
}

// StartRedis starts redis-server from PATH on a free 127.0.0.1 port with its
// files in a new temporary directory (no persistence). When redis-server is
// not on PATH or fails to start, it starts miniredis in-process instead; see
// the package doc for what miniredis lacks. ctx bounds only the start-up.
func StartRedis(ctx context.Context) (*Redis, error) {
	r, err := startRedisServer(ctx)
	if err == nil {
		return r, nil
	}
	if ctx.Err() != nil {
		return nil, err
	}
	m, merr := StartMiniredis()
	if merr != nil {
		return nil, fmt.Errorf("embedded: redis-server: %v; miniredis: %w", err, merr)
	}
	m.Fallback = err
	return m, nil
}

// StartRedisServer starts redis-server from PATH like StartRedis, without
// falling back to miniredis.
func StartRedisServer(ctx context.Context) (*Redis, error) { return startRedisServer(ctx) }

func startRedisServer(ctx context.Context) (*Redis, error) {
	if _, err := redisproc.LookPath(); err != nil {
		return nil, err
	}
	dir, err := os.MkdirTemp("", "recstream-redis-")
	if err != nil {
		return nil, fmt.Errorf("embedded: %w", err)
	}
	p, err := redisproc.Launch(ctx, dir)
	if err != nil {
		_ = os.RemoveAll(dir)
		return nil, err
	}
	return &Redis{
		Addr: p.Addr(),
		Kind: KindRedisServer,
		Close: func() error {
			err := p.Close()
			if rerr := os.RemoveAll(dir); err == nil {
				err = rerr
			}
			return err
		},
	}, nil
}

// TTLTick is how often StartMiniredis advances miniredis' TTLs, which
// otherwise never elapse.
const TTLTick = 250 * time.Millisecond

// StartMiniredis starts miniredis on a free 127.0.0.1 port. A goroutine moves
// its TTLs forward every TTLTick, so keys expire in wall-clock time with that
// granularity.
func StartMiniredis() (*Redis, error) {
	m, err := miniredis.Run()
	if err != nil {
		return nil, fmt.Errorf("embedded: miniredis: %w", err)
	}
	stop := make(chan struct{})
	done := make(chan struct{})
	go func() {
		defer close(done)
		t := time.NewTicker(TTLTick)
		defer t.Stop()
		last := time.Now()
		for {
			select {
			case <-stop:
				return
			case now := <-t.C:
				m.FastForward(now.Sub(last))
				last = now
			}
		}
	}()
	var once sync.Once
	return &Redis{
		Addr: m.Addr(),
		Kind: KindMiniredis,
		Close: func() error {
			once.Do(func() {
				close(stop)
				<-done
				m.Close()
			})
			return nil
		},
	}, nil
}
