package redistest_test

import (
	"context"
	"errors"
	"fmt"
	"os"
	"path/filepath"
	"strings"
	"sync"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"

	"github.com/recstream/recstream/internal/redistest"
	"github.com/recstream/recstream/internal/redistest/redisproc"
)

func TestStartClientFlush(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	if !strings.HasPrefix(s.Addr, "127.0.0.1:") || s.Port == 0 || s.Dir == "" {
		t.Fatalf("server %+v", s)
	}
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "k", "v", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Do(ctx, "SELECT", 1).Err(); err != nil {
		t.Fatal(err)
	}
	s.FlushAll(t)
	if n := c.DBSize(ctx).Val(); n != 0 {
		t.Fatalf("DBSIZE after FlushAll = %d", n)
	}
	// The defaults: no save points, no AOF, files in Dir.
	cfg := c.ConfigGet(ctx, "*").Val()
	want := map[string]string{"save": "", "appendonly": "no", "dbfilename": "dump.rdb", "dir": s.Dir, "bind": "127.0.0.1"}
	for k, v := range want {
		if cfg[k] != v {
			t.Errorf("CONFIG %s = %q, want %q", k, cfg[k], v)
		}
	}
}

func TestExtraArgs(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "--maxmemory", "12345678")
	c := s.Client(t)
	if got := c.ConfigGet(context.Background(), "maxmemory").Val()["maxmemory"]; got != "12345678" {
		t.Fatalf("maxmemory = %q", got)
	}
}

func TestStopRestartKeepsData(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	ctx := context.Background()
	c := s.Client(t)
	if err := c.ZAdd(ctx, "z", redis.Z{Score: 1.5, Member: "a"}).Err(); err != nil {
		t.Fatal(err)
	}
	addr, pid := s.Addr, s.Process().Pid()
	s.Stop(t)
	if s.Running() {
		t.Fatal("running after Stop")
	}
	if _, err := os.Stat(filepath.Join(s.Dir, "dump.rdb")); err != nil {
		t.Fatalf("no dump.rdb after Stop: %v", err)
	}
	if err := c.Ping(ctx).Err(); err == nil {
		t.Fatal("PING answered while stopped")
	}
	s.Restart(t)
	if s.Addr != addr || s.Process().Addr() != addr || s.Process().Pid() == pid {
		t.Fatalf("restart: addr %s (was %s), pid %d (was %d)", s.Process().Addr(), addr, s.Process().Pid(), pid)
	}
	// The same client reconnects.
	if got := c.ZScore(ctx, "z", "a").Val(); got != 1.5 {
		t.Fatalf("ZSCORE after restart = %v, want 1.5", got)
	}
	// Restart of a running server stops it (saving) first.
	if err := c.Set(ctx, "k2", "v2", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Restart(t)
	if got := c.Get(ctx, "k2").Val(); got != "v2" {
		t.Fatalf("GET after second restart = %q", got)
	}
}

func TestKillLosesUnsavedData(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t)
	ctx := context.Background()
	c := s.Client(t)
	if err := c.Set(ctx, "saved", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Save(ctx).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "unsaved", "1", 0).Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill(t)
	s.Kill(t) // idempotent
	s.Restart(t)
	if n := c.Exists(ctx, "saved", "unsaved").Val(); n != 1 || c.Get(ctx, "saved").Val() != "1" {
		t.Fatalf("after kill and restart: %d of the keys exist, want only the saved one", n)
	}
}

func TestKillWithAOFKeepsData(t *testing.T) {
	t.Parallel()
	s := redistest.Start(t, "--appendonly", "yes", "--appendfsync", "always")
	ctx := context.Background()
	c := s.Client(t)
	if err := c.HSet(ctx, "h", "f", "v").Err(); err != nil {
		t.Fatal(err)
	}
	s.Kill(t)
	s.Restart(t) // same args: AOF on
	if got := c.HGet(ctx, "h", "f").Val(); got != "v" {
		t.Fatalf("HGET after kill with AOF = %q", got)
	}
}

func TestParallelServers(t *testing.T) {
	t.Parallel()
	const n = 6
	servers := make([]*redistest.Server, n)
	var wg sync.WaitGroup
	var mu sync.Mutex
	var errs []string
	for i := range servers {
		wg.Add(1)
		go func() {
			defer wg.Done()
			// Start must run on the test goroutine to Fatal; use Launch here.
			p, err := redistest.Launch(context.Background(), t.TempDir())
			if err != nil {
				mu.Lock()
				errs = append(errs, err.Error())
				mu.Unlock()
				return
			}
			t.Cleanup(func() { _ = p.Close() })
			servers[i] = &redistest.Server{Addr: p.Addr()}
		}()
	}
	wg.Wait()
	if len(errs) > 0 {
		t.Fatal(strings.Join(errs, "\n"))
	}
	seen := map[string]bool{}
	for i, s := range servers {
		if seen[s.Addr] {
			t.Fatalf("address %s used twice", s.Addr)
		}
		seen[s.Addr] = true
		c := redis.NewClient(s.Options())
		if err := c.Set(context.Background(), "i", i, 0).Err(); err != nil {
			t.Fatal(err)
		}
		_ = c.Close()
	}
}

// fakeTB records Fatalf and stops the helper the way t.Fatal would.
type fakeTB struct {
	testing.TB
	msg string
}

type fatal struct{}

func (f *fakeTB) Helper() {}
func (f *fakeTB) Fatalf(format string, args ...any) {
	f.msg = fmt.Sprintf(format, args...)
	panic(fatal{})
}

func TestMissingBinaryMessage(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	f := &fakeTB{TB: t}
	func() {
		defer func() {
			if r := recover(); r != nil {
				if _, ok := r.(fatal); !ok {
					panic(r)
				}
			}
		}()
		redistest.Start(f)
	}()
	if !strings.Contains(f.msg, "install redis-server") {
		t.Fatalf("message %q does not say to install redis-server", f.msg)
	}
	_, err := redistest.Launch(context.Background(), t.TempDir())
	if err == nil || !strings.Contains(err.Error(), "not found") {
		t.Fatalf("Launch without redis-server: %v", err)
	}
	if !errors.Is(err, redisproc.ErrNotFound) {
		t.Fatalf("Launch error %v does not wrap ErrNotFound", err)
	}
}

func TestStartCluster(t *testing.T) {
	c := redistest.StartCluster(t, 3)
	cc := c.Client(t)
	ctx := context.Background()
	// Keys of three different hash tags land on different masters.
	seen := map[string]bool{}
	for _, k := range []string{"{a}x", "{b}x", "{c}x", "{d}x", "{e}x", "{f}x"} {
		if err := cc.Set(ctx, k, "1", 0).Err(); err != nil {
			t.Fatal(err)
		}
		slot, err := cc.ClusterKeySlot(ctx, k).Result()
		if err != nil {
			t.Fatal(err)
		}
		for _, s := range c.Nodes {
			n, err := s.Client(t).Exists(ctx, k).Result()
			if err != nil && !strings.HasPrefix(err.Error(), "MOVED") {
				t.Fatal(err)
			}
			if n == 1 {
				seen[s.Addr] = true
				t.Logf("%s (slot %d) on %s", k, slot, s.Addr)
			}
		}
	}
	if len(seen) < 2 {
		t.Errorf("keys landed on %d node(s), want them spread over the cluster", len(seen))
	}
}

// TestSentinelFailover starts a master, a replica and three sentinels, all
// password-protected with different passwords, kills the master once the
// replica has its writes, and checks that the sentinels promote the replica
// with the data and that a failover client follows by itself.
func TestSentinelFailover(t *testing.T) {
	t.Parallel()
	start := time.Now()
	s := redistest.StartSentinel(t, redistest.SentinelOptions{Sentinels: 3, Password: "data-pw", SentinelPassword: "sentinel-pw"})
	t.Logf("%s ready after %s", s, time.Since(start).Round(time.Millisecond))
	if len(s.Nodes) != 2 || len(s.Sentinels) != 3 || len(s.Addrs) != 3 {
		t.Fatalf("%d nodes, %d sentinels, %d addrs", len(s.Nodes), len(s.Sentinels), len(s.Addrs))
	}
	old := s.Master(t)
	if old != s.Nodes[0] {
		t.Fatalf("master %s, want the first node %s", old.Addr, s.Nodes[0].Addr)
	}
	ctx := context.Background()
	// The passwords are enforced: the sentinels refuse the data password
	// and the nodes refuse no password.
	wrong := redis.NewSentinelClient(&redis.Options{Addr: s.Addrs[0], Password: "data-pw"})
	defer wrong.Close()
	if err := wrong.Ping(ctx).Err(); err == nil {
		t.Error("a sentinel accepted the data nodes' password")
	}
	none := redis.NewClient(&redis.Options{Addr: old.Addr})
	defer none.Close()
	if err := none.Ping(ctx).Err(); err == nil {
		t.Error("the master accepted a client without a password")
	}
	fc := redis.NewFailoverClient(s.FailoverOptions())
	defer fc.Close()
	for i := 0; i < 100; i++ {
		if err := fc.Set(ctx, fmt.Sprint("k", i), i, 0).Err(); err != nil {
			t.Fatal(err)
		}
	}
	s.WaitReplicated(t, 10*time.Second)
	old.Kill(t)
	killed := time.Now()
	m := s.WaitFailover(t, old, 30*time.Second)
	t.Logf("master %s killed; sentinels promoted %s after %s", old.Addr, m.Addr, time.Since(killed).Round(time.Millisecond))
	if m != s.Nodes[1] {
		t.Fatalf("new master %s, want the replica %s", m.Addr, s.Nodes[1].Addr)
	}
	if n := m.Client(t).DBSize(ctx).Val(); n != 100 {
		t.Fatalf("the promoted replica holds %d keys, want 100", n)
	}
	// The failover client writes to the new master.
	deadline := time.Now().Add(10 * time.Second)
	for {
		err := fc.Set(ctx, "after", "1", 0).Err()
		if err == nil {
			break
		}
		if time.Now().After(deadline) {
			t.Fatalf("failover client after the failover: %v", err)
		}
		time.Sleep(50 * time.Millisecond)
	}
	if got := m.Client(t).Get(ctx, "after").Val(); got != "1" {
		t.Fatalf("the write after the failover is not on the new master: %q", got)
	}
}
