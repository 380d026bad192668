package bench

import (
	"bufio"
	"context"
	"fmt"
	"os"
	"strconv"
	"strings"
	"sync/atomic"
	"syscall"
	"time"

	"github.com/redis/go-redis/v9"
)

// cmdCounter is a go-redis hook counting the commands a client sends (each
// command of a pipeline counts once).
type cmdCounter struct{ n atomic.Int64 }

func (c *cmdCounter) DialHook(next redis.DialHook) redis.DialHook { return next }

func (c *cmdCounter) ProcessHook(next redis.ProcessHook) redis.ProcessHook {
	return func(ctx context.Context, cmd redis.Cmder) error {
		c.n.Add(1)
		return next(ctx, cmd)
	}
}

func (c *cmdCounter) ProcessPipelineHook(next redis.ProcessPipelineHook) redis.ProcessPipelineHook {
	return func(ctx context.Context, cmds []redis.Cmder) error {
		c.n.Add(int64(len(cmds)))
		return next(ctx, cmds)
	}
}

// info parses an INFO section into field -> value.
func info(ctx context.Context, rdb *redis.Client, section string) (map[string]string, error) {
	s, err := rdb.Info(ctx, section).Result()
	if err != nil {
		return nil, fmt.Errorf("INFO %s: %w", section, err)
	}
	out := make(map[string]string)
	for _, line := range strings.Split(s, "\n") {
		line = strings.TrimSpace(line)
		if line == "" || line[0] == '#' {
			continue
		}
		if k, v, ok := strings.Cut(line, ":"); ok {
			out[k] = v
		}
	}
	return out, nil
}

// snapshot is what the benchmark reads from Redis and the process before and
// after a phase.
type snapshot struct {
	at       time.Time
	calls    map[string]int64 // command -> calls (INFO commandstats)
	usec     map[string]int64 // command -> µs inside it (a script's include its commands')
	redisCPU float64          // seconds, used_cpu_user + used_cpu_sys
	procCPU  float64          // seconds, this process (user + sys)
	client   int64            // commands sent by the processor's client
	memory   int64            // used_memory
}

func takeSnapshot(ctx context.Context, rdb *redis.Client, client *cmdCounter) (snapshot, error) {
	s := snapshot{at: time.Now(), calls: make(map[string]int64), usec: make(map[string]int64)}
	if client != nil {
		s.client = client.n.Load()
	}
	cs, err := info(ctx, rdb, "commandstats")
	if err != nil {
		return s, err
	}
	for k, v := range cs {
		name, ok := strings.CutPrefix(k, "cmdstat_")
		if !ok {
			continue
		}
		for _, f := range strings.Split(v, ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				s.calls[name], _ = strconv.ParseInt(n, 10, 64)
			}
			if n, ok := strings.CutPrefix(f, "usec="); ok {
				s.usec[name], _ = strconv.ParseInt(n, 10, 64)
			}
		}
	}
	cpu, err := info(ctx, rdb, "cpu")
	if err != nil {
		return s, err
	}
	u, _ := strconv.ParseFloat(cpu["used_cpu_user"], 64)
	sy, _ := strconv.ParseFloat(cpu["used_cpu_sys"], 64)
	s.redisCPU = u + sy
	mem, err := info(ctx, rdb, "memory")
	if err != nil {
		return s, err
	}
	s.memory, _ = strconv.ParseInt(mem["used_memory"], 10, 64)
	s.procCPU = processCPU()
	return s, nil
}

// delta is the difference between two snapshots.
type delta struct {
	wall     time.Duration
	calls    map[string]int64
	usec     map[string]int64
	total    int64 // all commands Redis executed, INFO excluded
	redisCPU float64
	procCPU  float64
	client   int64
}

func diff(a, b snapshot) delta {
	d := delta{wall: b.at.Sub(a.at), calls: make(map[string]int64), usec: make(map[string]int64), redisCPU: b.redisCPU - a.redisCPU, procCPU: b.procCPU - a.procCPU, client: b.client - a.client}
	for k, v := range b.calls {
		if k == "info" {
			continue // the benchmark's own probes
		}
		if n := v - a.calls[k]; n > 0 {
			d.calls[k] = n
			d.total += n
			d.usec[k] = b.usec[k] - a.usec[k]
		}
	}
	return d
}

// processCPU returns this process's user+system CPU time in seconds.
func processCPU() float64 {
	var ru syscall.Rusage
	if err := syscall.Getrusage(syscall.RUSAGE_SELF, &ru); err != nil {
		return 0
	}
	return tv(ru.Utime) + tv(ru.Stime)
}

func tv(t syscall.Timeval) float64 { return float64(t.Sec) + float64(t.Usec)/1e6 }

// procStatus reads a "VmHWM:   1234 kB" style field of /proc/self/status in
// bytes (0 when unavailable).
func procStatus(field string) int64 { return statusField("/proc/self/status", field) }

// statusField reads such a field of a /proc/<pid>/status file.
func statusField(path, field string) int64 {
	f, err := os.Open(path)
	if err != nil {
		return 0
	}
	defer f.Close()
	sc := bufio.NewScanner(f)
	for sc.Scan() {
		v, ok := strings.CutPrefix(sc.Text(), field+":")
		if !ok {
			continue
		}
		fs := strings.Fields(v)
		if len(fs) == 0 {
			return 0
		}
		n, _ := strconv.ParseInt(fs[0], 10, 64)
		return n * 1024
	}
	return 0
}

// scriptCallsCounted checks whether INFO commandstats counts the commands a
// Lua script runs: it runs a script calling HSET on a scratch key once and
// looks at cmdstat_hset.
func scriptCallsCounted(ctx context.Context, rdb *redis.Client) (bool, error) {
	count := func() (int64, error) {
		cs, err := info(ctx, rdb, "commandstats")
		if err != nil {
			return 0, err
		}
		for _, f := range strings.Split(cs["cmdstat_hset"], ",") {
			if n, ok := strings.CutPrefix(f, "calls="); ok {
				return strconv.ParseInt(n, 10, 64)
			}
		}
		return 0, nil
	}
	before, err := count()
	if err != nil {
		return false, err
	}
	key := "bench:probe"
	if err := rdb.Eval(ctx, "return redis.call('HSET', KEYS[1], 'x', '1')", []string{key}).Err(); err != nil {
		return false, fmt.Errorf("probe script: %w", err)
	}
	after, err := count()
	if err != nil {
		return false, err
	}
	_ = rdb.Del(ctx, key).Err()
	return after-before == 1, nil
}

// cpuModel returns the first "model name" of /proc/cpuinfo.
func cpuModel() string {
	b, err := os.ReadFile("/proc/cpuinfo")
	if err != nil {
		return ""
	}
	for _, line := range strings.Split(string(b), "\n") {
		if k, v, ok := strings.Cut(line, ":"); ok && strings.TrimSpace(k) == "model name" {
			return strings.TrimSpace(v)
		}
	}
	return ""
}
