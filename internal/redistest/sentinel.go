package redistest

import (
	"context"
	"fmt"
	"os"
	"path/filepath"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// SentinelOptions configures StartSentinel. Zero values take the defaults.
type SentinelOptions struct {
	MasterName string // default "mymaster"
	Replicas   int    // replicas of the master; default 1
	Sentinels  int    // sentinel processes; default 1
	Quorum     int    // sentinels that must agree the master is down; default a majority
	// DownAfter is down-after-milliseconds: how long the master may stay
	// silent before a sentinel considers it down; default 500ms.
	DownAfter time.Duration
	// FailoverTimeout is failover-timeout; default 2s.
	FailoverTimeout time.Duration
	// Password is the data nodes' requirepass (and the replicas' masterauth,
	// the sentinels' auth-pass); empty for none.
	Password string
	// SentinelPassword is the sentinels' own password (the default user's,
	// also used between sentinels); empty for none.
	SentinelPassword string
	// Args are extra arguments of every data node.
	Args []string
}

// Sentinel is a Sentinel-managed Redis owned by one test: a master, its
// replicas and the sentinels monitoring it, each a redis-server process
// (sentinels run `redis-server sentinel.conf --sentinel`) on a free port,
// killed at cleanup.
type Sentinel struct {
	MasterName string
	// Nodes are the data nodes: Nodes[0] is the first master, the others
	// replicate it. After a failover another node is the master (Master).
	Nodes []*Server
	// Sentinels are the sentinel processes; their Password is
	// SentinelOptions.SentinelPassword.
	Sentinels []*Server
	// Addrs are the sentinels' addresses: redis.addrs for a client with
	// redis.master_name set.
	Addrs []string

	opt SentinelOptions
}

// StartSentinel starts the master, the replicas (waiting until they are in
// sync) and the sentinels, and waits until every sentinel monitors the
// master, knows every replica and every other sentinel: from then on a
// failover can start DownAfter after the master stops answering.
func StartSentinel(t testing.TB, o SentinelOptions) *Sentinel {
	t.Helper()
	if o.MasterName == "" {
		o.MasterName = "mymaster"
	}
	if o.Replicas <= 0 {
		o.Replicas = 1
	}
	if o.Sentinels <= 0 {
		o.Sentinels = 1
	}
	if o.Quorum <= 0 {
		o.Quorum = o.Sentinels/2 + 1
	}
	if o.DownAfter <= 0 {
		o.DownAfter = 500 * time.Millisecond
	}
	if o.FailoverTimeout <= 0 {
		o.FailoverTimeout = 2 * time.Second
	}
	s := &Sentinel{MasterName: o.MasterName, opt: o}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()

	// The password is set once the server answered: redisproc checks
	// readiness with an unauthenticated INFO.
	protect := func(n *Server) {
		if o.Password == "" {
			return
		}
		c := redis.NewClient(n.Options())
		defer c.Close()
		if err := c.ConfigSet(ctx, "requirepass", o.Password).Err(); err != nil {
			t.Fatalf("redistest: CONFIG SET requirepass on %s: %v", n.Addr, err)
		}
		n.Password = o.Password
	}
	// A full resynchronisation waits repl-diskless-sync-delay (5 s by
	// default) for more replicas to join; there are no more to wait for.
	base := append([]string{"--repl-diskless-sync-delay", "0"}, o.Args...)
	master := Start(t, base...)
	protect(master)
	s.Nodes = append(s.Nodes, master)
	for i := 0; i < o.Replicas; i++ {
		args := append([]string{"--replicaof", "127.0.0.1", strconv.Itoa(master.Port)}, base...)
		if o.Password != "" {
			args = append(args, "--masterauth", o.Password)
		}
		r := Start(t, args...)
		protect(r)
		s.Nodes = append(s.Nodes, r)
	}
	mc := redis.NewClient(master.Options())
	defer mc.Close()
	waitUntil(t, ctx, "replicas in sync with "+master.Addr, func() (bool, string) {
		info, err := mc.Info(ctx, "replication").Result()
		if err != nil {
			return false, err.Error()
		}
		return strings.Count(info, "state=online") == o.Replicas, info
	})

	for i := 0; i < o.Sentinels; i++ {
		dir := t.TempDir()
		conf := []string{
			fmt.Sprintf("sentinel monitor %s 127.0.0.1 %d %d", o.MasterName, master.Port, o.Quorum),
			fmt.Sprintf("sentinel down-after-milliseconds %s %d", o.MasterName, o.DownAfter.Milliseconds()),
			fmt.Sprintf("sentinel failover-timeout %s %d", o.MasterName, o.FailoverTimeout.Milliseconds()),
			fmt.Sprintf("sentinel parallel-syncs %s 1", o.MasterName),
		}
		if o.Password != "" {
			conf = append(conf, fmt.Sprintf("sentinel auth-pass %s %s", o.MasterName, o.Password))
		}
		if o.SentinelPassword != "" {
			conf = append(conf, "sentinel sentinel-pass "+o.SentinelPassword)
		}
		if err := os.WriteFile(filepath.Join(dir, "sentinel.conf"), []byte(strings.Join(conf, "\n")+"\n"), 0o600); err != nil {
			t.Fatalf("redistest: %v", err)
		}
		sn := startIn(t, dir, "sentinel.conf", []string{"--sentinel"})
		if o.SentinelPassword != "" {
			c := redis.NewClient(sn.Options())
			err := c.Do(ctx, "ACL", "SETUSER", "default", "resetpass", ">"+o.SentinelPassword).Err()
			_ = c.Close()
			if err != nil {
				t.Fatalf("redistest: setting the sentinel password on %s: %v", sn.Addr, err)
			}
			sn.Password = o.SentinelPassword
		}
		s.Sentinels = append(s.Sentinels, sn)
		s.Addrs = append(s.Addrs, sn.Addr)
	}
	for _, sn := range s.Sentinels {
		sc := s.sentinelClient(sn)
		waitUntil(t, ctx, "sentinel "+sn.Addr+" to know the master, its replicas and the other sentinels", func() (bool, string) {
			m, err := sc.Master(ctx, o.MasterName).Result()
			if err != nil {
				return false, err.Error()
			}
			ok := m["flags"] == "master" &&
				m["num-slaves"] == strconv.Itoa(o.Replicas) &&
				m["num-other-sentinels"] == strconv.Itoa(o.Sentinels-1)
			return ok, fmt.Sprint(m)
		})
		_ = sc.Close()
	}
	return s
}

func (s *Sentinel) sentinelClient(sn *Server) *redis.SentinelClient {
	return redis.NewSentinelClient(&redis.Options{Addr: sn.Addr, Password: s.opt.SentinelPassword})
}

// FailoverOptions returns options for a go-redis failover client of the
// master.
func (s *Sentinel) FailoverOptions() *redis.FailoverOptions {
	return &redis.FailoverOptions{
		MasterName:       s.MasterName,
		SentinelAddrs:    s.Addrs,
		SentinelPassword: s.opt.SentinelPassword,
		Password:         s.opt.Password,
	}
}

// Node returns the data node at addr, or nil.
func (s *Sentinel) Node(addr string) *Server {
	for _, n := range s.Nodes {
		if n.Addr == addr {
			return n
		}
	}
	return nil
}

// Master returns the data node the first answering sentinel names master.
func (s *Sentinel) Master(t testing.TB) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), 10*time.Second)
	defer cancel()
	var last error
	for _, sn := range s.Sentinels {
		if !sn.Running() {
			continue
		}
		n, a, err := s.namedMaster(ctx, sn)
		if err != nil {
			last = err
			continue
		}
		if n != nil {
			return n
		}
		last = fmt.Errorf("sentinel %s names %s, not a node of this test", sn.Addr, a)
	}
	t.Fatalf("redistest: no sentinel names the master: %v", last)
	return nil
}

// namedMaster asks sentinel sn for the master's address; n is the data
// node at that address (nil when it is none of this test's).
func (s *Sentinel) namedMaster(ctx context.Context, sn *Server) (n *Server, addr string, err error) {
	sc := s.sentinelClient(sn)
	defer sc.Close()
	a, err := sc.GetMasterAddrByName(ctx, s.MasterName).Result()
	if err != nil {
		return nil, "", err
	}
	addr = a[0] + ":" + a[1]
	return s.Node(addr), addr, nil
}

// WaitReplicated waits until every running replica has processed the
// master's whole replication stream (its offset equals the master's), so
// that a write the master acknowledged before the call survives a failover.
// Writes still arriving keep it waiting: pause them first (CLIENT PAUSE
// WRITE) when the master stays busy.
func (s *Sentinel) WaitReplicated(t testing.TB, timeout time.Duration) {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	m := s.Master(t)
	mc := redis.NewClient(m.Options())
	defer mc.Close()
	waitUntil(t, ctx, "replicas to catch up with "+m.Addr, func() (bool, string) {
		mo, err := replOffset(ctx, mc)
		if err != nil {
			return false, err.Error()
		}
		state := fmt.Sprintf("master %s offset %d", m.Addr, mo)
		for _, n := range s.Nodes {
			if n == m || !n.Running() {
				continue
			}
			rc := redis.NewClient(n.Options())
			ro, err := replOffset(ctx, rc)
			_ = rc.Close()
			if err != nil {
				return false, err.Error()
			}
			state += fmt.Sprintf(", replica %s offset %d", n.Addr, ro)
			if ro != mo {
				return false, state
			}
		}
		return true, state
	})
}

// WaitFailover waits until every running sentinel names a master other
// than old and that node answers as a master, and returns it.
func (s *Sentinel) WaitFailover(t testing.TB, old *Server, timeout time.Duration) *Server {
	t.Helper()
	ctx, cancel := context.WithTimeout(context.Background(), timeout)
	defer cancel()
	var m *Server
	waitUntil(t, ctx, "a failover away from "+old.Addr, func() (bool, string) {
		m = nil
		for _, sn := range s.Sentinels {
			if !sn.Running() {
				continue
			}
			n, a, err := s.namedMaster(ctx, sn)
			if err != nil {
				return false, err.Error()
			}
			if n == nil || n == old || (m != nil && n != m) {
				return false, fmt.Sprintf("sentinel %s names %s", sn.Addr, a)
			}
			m = n
		}
		c := redis.NewClient(m.Options())
		defer c.Close()
		role, err := c.Do(ctx, "ROLE").Slice()
		if err != nil || len(role) == 0 || role[0] != "master" {
			return false, fmt.Sprintf("%s answers ROLE %v %v", m.Addr, role, err)
		}
		return true, ""
	})
	return m
}

// String lists the sentinel and node addresses.
func (s *Sentinel) String() string {
	var nodes []string
	for _, n := range s.Nodes {
		nodes = append(nodes, n.Addr)
	}
	return fmt.Sprintf("redis sentinel %s %v nodes %v", s.MasterName, s.Addrs, nodes)
}

// replOffset is the replication offset a node has produced (master) or
// processed (replica): master_repl_offset in INFO replication.
func replOffset(ctx context.Context, c *redis.Client) (int64, error) {
	info, err := c.Info(ctx, "replication").Result()
	if err != nil {
		return 0, err
	}
	for _, l := range strings.Split(info, "\n") {
		if v, ok := strings.CutPrefix(strings.TrimSpace(l), "master_repl_offset:"); ok {
			return strconv.ParseInt(v, 10, 64)
		}
	}
	return 0, fmt.Errorf("INFO replication of %s has no master_repl_offset", c.Options().Addr)
}

// waitUntil polls cond every 20 ms until it holds; when ctx ends it fails
// the test with what and cond's last state.
func waitUntil(t testing.TB, ctx context.Context, what string, cond func() (bool, string)) {
	t.Helper()
	for {
		ok, state := cond()
		if ok {
			return
		}
		select {
		case <-ctx.Done():
			t.Fatalf("redistest: timed out waiting for %s: %s", what, state)
		case <-time.After(20 * time.Millisecond):
		}
	}
}
