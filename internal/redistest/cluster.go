package redistest

import (
	"context"
	"fmt"
	"os/exec"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
)

// Cluster is a Redis Cluster of masters (no replicas) owned by one test:
// each node a redis-server started with --cluster-enabled yes on a free
// port, joined with `redis-cli --cluster create`.
type Cluster struct {
	Nodes []*Server
	Addrs []string // 127.0.0.1:port of every node
}

// StartCluster starts n (at least 3) cluster-enabled redis-servers, assigns
// all 16384 slots with `redis-cli --cluster create ... --cluster-replicas 0
// --cluster-yes` and waits until every node reports cluster_state:ok. args
// are passed to every node. The nodes are killed at cleanup.
func StartCluster(t testing.TB, n int, args ...string) *Cluster {
	t.Helper()
	if n < 3 {
		t.Fatalf("redistest: a Redis Cluster needs at least 3 masters, got %d", n)
	}
	cli, err := exec.LookPath("redis-cli")
	if err != nil {
		t.Fatalf("redistest: redis-cli is not on PATH (Debian: apt-get install -y redis-tools): %v", err)
	}
	c := &Cluster{}
	for i := 0; i < n; i++ {
		a := append([]string{
			"--cluster-enabled", "yes",
			"--cluster-config-file", "nodes.conf",
			"--cluster-node-timeout", "2000",
		}, args...)
		s := Start(t, a...)
		c.Nodes = append(c.Nodes, s)
		c.Addrs = append(c.Addrs, s.Addr)
	}
	ctx, cancel := context.WithTimeout(context.Background(), 60*time.Second)
	defer cancel()
	cmdArgs := append([]string{"--cluster", "create"}, c.Addrs...)
	cmdArgs = append(cmdArgs, "--cluster-replicas", "0", "--cluster-yes")
	if out, err := exec.CommandContext(ctx, cli, cmdArgs...).CombinedOutput(); err != nil {
		t.Fatalf("redistest: redis-cli --cluster create: %v\n%s", err, out)
	}
	for _, s := range c.Nodes {
		rc := redis.NewClient(s.Options())
		for {
			info, err := rc.ClusterInfo(ctx).Result()
			if err == nil && strings.Contains(info, "cluster_state:ok") {
				break
			}
			if ctx.Err() != nil {
				_ = rc.Close()
				t.Fatalf("redistest: node %s did not reach cluster_state:ok: %v %q", s.Addr, err, info)
			}
			time.Sleep(50 * time.Millisecond)
		}
		_ = rc.Close()
	}
	return c
}

// Client returns a ClusterClient for the cluster, closed at cleanup.
func (c *Cluster) Client(t testing.TB) *redis.ClusterClient {
	t.Helper()
	cc := redis.NewClusterClient(&redis.ClusterOptions{Addrs: c.Addrs})
	t.Cleanup(func() { _ = cc.Close() })
	return cc
}

// FlushAll removes every key on every node.
func (c *Cluster) FlushAll(t testing.TB) {
	t.Helper()
	for _, s := range c.Nodes {
		s.FlushAll(t)
	}
}

// String lists the node addresses.
func (c *Cluster) String() string { return fmt.Sprintf("redis cluster %v", c.Addrs) }
