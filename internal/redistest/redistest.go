package redistest

import (
	"context"
	"errors"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest/redisproc"
)

// Process is one redis-server process; see package redisproc.
type Process = redisproc.Process

// Launch starts redis-server on a free port with its files in dir, without a
// testing.TB; see redisproc.Launch.
func Launch(ctx context.Context, dir string, args ...string) (*Process, error) {
	return redisproc.Launch(ctx, dir, args...)
}

// Server is a redis-server owned by one test.
type Server struct {
	Addr string // 127.0.0.1:port, the same across Restart
	Port int
	Dir  string // working directory holding dump.rdb
	// Password, when set, is sent by Options, Client and FlushAll (the
	// server's requirepass). Stop and Restart do not authenticate: Kill a
	// server with a password instead.
	Password string

	mu   sync.Mutex
	proc *Process
}

// Start launches redis-server with args appended to the defaults and waits
// until it answers (at most 10 s). The server is killed at cleanup; if the
// test failed, its recent log is logged first.
func Start(t testing.TB, args ...string) *Server {
	t.Helper()
	return startIn(t, t.TempDir(), "", args)
}

// startIn starts redis-server in dir, with the configuration file conf
// (relative to dir) when it is not empty.
func startIn(t testing.TB, dir, conf string, args []string) *Server {
	t.Helper()
	if !redisproc.Available() {
		t.Fatalf("redistest: %s is not on PATH: install redis-server (Debian: apt-get install -y redis-server; ./scripts/test.sh and .ci/run install it when missing)", redisproc.Binary)
	}
	var proc *Process
	var err error
	if conf == "" {
		proc, err = redisproc.Launch(context.Background(), dir, args...)
	} else {
		proc, err = redisproc.LaunchConfig(context.Background(), dir, conf, args...)
	}
	if err != nil {
		t.Fatalf("redistest: %v", err)
	}
	s := &Server{Addr: proc.Addr(), Port: proc.Port(), Dir: dir, proc: proc}
	t.Cleanup(func() {
		s.mu.Lock()
		p := s.proc
		s.mu.Unlock()
		if t.Failed() {
			t.Logf("redistest: redis-server %s log tail:\n%s", s.Addr, lastBytes(p.Log(), 4096))
		}
		if err := p.Kill(); err != nil {
			t.Errorf("redistest: %v", err)
		}
	})
	return s
}

// Process returns the current server process (it changes on Restart).
func (s *Server) Process() *Process {
	s.mu.Lock()
	defer s.mu.Unlock()
	return s.proc
}

// Running reports whether the server process is up.
func (s *Server) Running() bool { return !s.Process().Exited() }

// Options returns client options for the server, to adjust before
// redis.NewClient.
func (s *Server) Options() *redis.Options {
	return &redis.Options{Addr: s.Addr, Password: s.Password}
}

// Client returns a new client for the server, closed at cleanup.
func (s *Server) Client(t testing.TB) *redis.Client {
	t.Helper()
	c := redis.NewClient(s.Options())
	t.Cleanup(func() { _ = c.Close() })
	return c
}

// Stop shuts the server down with SHUTDOWN SAVE (dump.rdb is written, so
// Restart brings the data back) and waits for it to exit.
func (s *Server) Stop(t testing.TB) {
	t.Helper()
	p := s.Process()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	if err := p.Shutdown(ctx, true); err != nil {
		t.Fatalf("redistest: stop %s: %v\n%s", s.Addr, err, lastBytes(p.Log(), 4096))
	}
}

// Kill sends SIGKILL and waits for the exit: a crash, losing everything
// since the last save.
func (s *Server) Kill(t testing.TB) {
	t.Helper()
	if err := s.Process().Kill(); err != nil {
		t.Fatalf("redistest: kill %s: %v", s.Addr, err)
	}
}

// Restart starts the server again on the same port and directory with the
// same arguments (loading dump.rdb, or the AOF with --appendonly yes) and
// waits until it answers. A running server is stopped with Stop first.
func (s *Server) Restart(t testing.TB) {
	t.Helper()
	if s.Running() {
		s.Stop(t)
	}
	s.mu.Lock()
	defer s.mu.Unlock()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	p, err := s.proc.Relaunch(ctx)
	if err != nil {
		t.Fatalf("redistest: restart %s: %v", s.Addr, err)
	}
	s.proc = p
}

// FlushAll removes every key of every database.
func (s *Server) FlushAll(t testing.TB) {
	t.Helper()
	c := redis.NewClient(s.Options())
	defer c.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	if err := c.FlushAll(ctx).Err(); err != nil && !errors.Is(err, redis.Nil) {
		t.Fatalf("redistest: FLUSHALL on %s: %v", s.Addr, err)
	}
}

func lastBytes(s string, n int) string {
	if len(s) > n {
		return s[len(s)-n:]
	}
	return s
}
