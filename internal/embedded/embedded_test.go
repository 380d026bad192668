package embedded_test

import (
	"context"
	"fmt"
	"reflect"
	"strconv"
	"strings"
	"testing"
	"time"

	"github.com/redis/go-redis/v9"
	"github.com/segmentio/kafka-go"

	"github.com/recstream/recstream/event"
	"github.com/recstream/recstream/internal/embedded"
	"github.com/recstream/recstream/internal/redistest/redisproc"
	"github.com/recstream/recstream/internal/testopts"
	"github.com/recstream/recstream/store"
)

// script uses every command and Lua feature the store's scripts rely on.
// KEYS: 1 zset, 2 hash, 3 list, 4 string. ARGV: 1 increment, 2 score,
// 3 log cap, 4 ttl, 5 a fence offset.
const script = `
local out = {}
local inc = tonumber(ARGV[1])
redis.call('ZINCRBY', KEYS[1], ARGV[1], 'a')
redis.call('ZINCRBY', KEYS[1], string.format('%.17g', inc * 3), 'b')
redis.call('ZADD', KEYS[1], ARGV[2], 'c', '7', 'd', '-1.5', 'e')
local top = redis.call('ZREVRANGE', KEYS[1], 0, 2, 'WITHSCORES')
local sum = 0
for i = 2, #top, 2 do sum = sum + tonumber(top[i]) end
out[#out + 1] = {top[1], top[3], top[5], string.format('%.17g', sum)}
out[#out + 1] = redis.call('ZREMRANGEBYRANK', KEYS[1], 0, 0)
out[#out + 1] = redis.call('ZCARD', KEYS[1])
out[#out + 1] = string.format('%.17g', tonumber(redis.call('ZSCORE', KEYS[1], 'b')))
out[#out + 1] = tostring(redis.call('ZSCORE', KEYS[1], 'missing'))
out[#out + 1] = redis.call('HSET', KEYS[2], 'f:0', ARGV[5], 'name', 'two')
out[#out + 1] = string.format('%.17g', tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'pop', string.format('%.17g', inc))))
out[#out + 1] = string.format('%.17g', tonumber(redis.call('HINCRBYFLOAT', KEYS[2], 'pop', '0.2')))
out[#out + 1] = redis.call('HINCRBY', KEYS[2], 'n', 3)
local fence = tonumber(redis.call('HGET', KEYS[2], 'f:0'))
out[#out + 1] = string.format('%d', fence + 1)
out[#out + 1] = tostring(redis.call('HGET', KEYS[2], 'nope'))
local hm = redis.call('HMGET', KEYS[2], 'name', 'nope', 'f:0')
out[#out + 1] = {hm[1], tostring(hm[2]), hm[3]}
local entries = {}
for i = 1, 5 do entries[i] = ARGV[5] .. '|' .. i .. '|item' end
redis.call('LPUSH', KEYS[3], unpack(entries))
redis.call('LTRIM', KEYS[3], 0, tonumber(ARGV[3]) - 1)
out[#out + 1] = redis.call('LRANGE', KEYS[3], 0, -1)
local pos = string.find(entries[1], '|', 1, true)
out[#out + 1] = string.sub(entries[1], pos + 1)
local parts = {}
for w in string.gmatch('x\ny\nz', '[^\n]+') do parts[#parts + 1] = w end
out[#out + 1] = table.concat(parts, ',')
for i = 1, 3 do redis.call('EXPIRE', KEYS[i], tonumber(ARGV[4])) end
out[#out + 1] = redis.call('SET', KEYS[4], cjson.encode({n = 1}), 'EX', ARGV[4])['ok']
out[#out + 1] = redis.call('GET', KEYS[4])
out[#out + 1] = tostring(redis.call('GET', 'missing-key'))
out[#out + 1] = string.format('%.17g', 0.1)
out[#out + 1] = string.format('%.17g', 1 / 3)
out[#out + 1] = string.format('%.17g', 1e21)
out[#out + 1] = string.format('%.17g', 2 ^ 53)
out[#out + 1] = string.format('%.17g', 1e-5)
out[#out + 1] = string.format('%d', 1700000000123)
out[#out + 1] = tostring(12) .. tostring(-3) .. 7
out[#out + 1] = tostring(tonumber('2.5e-08') * 2)
out[#out + 1] = 3.99
out[#out + 1] = {1, 2, nil, 4}
return out
`

func startBoth(t *testing.T) (real, mini *redis.Client) {
	t.Helper()
	if !redisproc.Available() {
		t.Fatal("redis-server is not on PATH: install redis-server (./scripts/test.sh does)")
	}
	rs, err := embedded.StartRedis(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() {
		if err := rs.Close(); err != nil {
			t.Error(err)
		}
	})
	if rs.Kind != embedded.KindRedisServer {
		t.Fatalf("StartRedis with redis-server on PATH gave %s (%v)", rs.Kind, rs.Fallback)
	}
	mr, err := embedded.StartMiniredis()
	if err != nil {
		t.Fatal(err)
	}
	t.Cleanup(func() { _ = mr.Close() })
	real = redis.NewClient(&redis.Options{Addr: rs.Addr})
	mini = redis.NewClient(&redis.Options{Addr: mr.Addr})
	t.Cleanup(func() { real.Close(); mini.Close() })
	return real, mini
}

func TestScriptSameOnRedisServerAndMiniredis(t *testing.T) {
	t.Parallel()
	real, mini := startBoth(t)
	ctx := context.Background()
	keys := []string{"{u1}:w", "{u1}:m", "{u1}:log", "{u1}:list"}
	args := []any{strconv.FormatFloat(0.1, 'g', 17, 64), "2.5", 3, 100, "41"}

	var results [2]any
	for i, c := range []*redis.Client{real, mini} {
		sha, err := c.ScriptLoad(ctx, script).Result()
		if err != nil {
			t.Fatal(err)
		}
		if err := c.EvalSha(ctx, "ffffffffffffffffffffffffffffffffffffffff", nil).Err(); err == nil || !strings.HasPrefix(err.Error(), "NOSCRIPT") {
			t.Errorf("client %d: EVALSHA of an unknown script: %v, want NOSCRIPT", i, err)
		}
		res, err := c.EvalSha(ctx, sha, keys, args...).Result()
		if err != nil {
			t.Fatalf("client %d: %v", i, err)
		}
		results[i] = res
		// go-redis' Script (EVALSHA, EVAL on NOSCRIPT) works as well.
		if n, err := redis.NewScript("return redis.call('ZCARD', KEYS[1])").Run(ctx, c, keys[:1]).Int(); err != nil || n != 4 {
			t.Errorf("client %d: Script.Run = %d, %v", i, n, err)
		}
	}
	if !reflect.DeepEqual(results[0], results[1]) {
		t.Fatalf("script results differ:\nredis-server %#v\nminiredis    %#v", results[0], results[1])
	}
	want := []any{
		[]any{"d", "c", "b", "9.8000000000000007"},
		int64(1), int64(4), "0.30000000000000004", "false",
		int64(2), "0.10000000000000001", "0.29999999999999999", int64(3), "42", "false",
		[]any{"two", "false", "41"},
		[]any{"41|5|item", "41|4|item", "41|3|item"},
		"1|item", "x,y,z",
		"OK", `{"n":1}`, "false",
		"0.10000000000000001", "0.33333333333333331", "1e+21", "9007199254740992", "1.0000000000000001e-05", "1700000000123",
		"12-37", "5e-08",
		int64(3), []any{int64(1), int64(2)},
	}
	if !reflect.DeepEqual(results[0], want) {
		t.Errorf("result %#v\nwant   %#v", results[0], want)
	}

	// The state left behind, read with go-redis' typed commands.
	state := func(c *redis.Client) []any {
		return []any{
			c.ZRevRangeWithScores(ctx, keys[0], 0, -1).Val(),
			c.HGetAll(ctx, keys[1]).Val(),
			c.LRange(ctx, keys[2], 0, -1).Val(),
			c.Get(ctx, keys[3]).Val(),
		}
	}
	if a, b := state(real), state(mini); !reflect.DeepEqual(a, b) {
		t.Errorf("state differs:\nredis-server %v\nminiredis    %v", a, b)
	}
	for i, c := range []*redis.Client{real, mini} {
		for _, k := range keys {
			if ttl := c.TTL(ctx, k).Val(); ttl <= 90*time.Second || ttl > 100*time.Second {
				t.Errorf("client %d: TTL %s = %s, want about 100s", i, k, ttl)
			}
		}
	}
}

// TestMiniredisGaps pins the differences the package doc lists. If one
// fails after a miniredis upgrade, update the doc.
func TestMiniredisGaps(t *testing.T) {
	t.Parallel()
	real, mini := startBoth(t)
	ctx := context.Background()
	eval := func(c *redis.Client, src string, args ...any) string {
		r, err := c.Eval(ctx, src, nil, args...).Result()
		if err != nil {
			return "error: " + err.Error()
		}
		return fmt.Sprint(r)
	}
	gaps := []struct {
		name, src    string
		args         []any
		real, mini   string
		prefixesOnly bool
	}{
		{"tonumber of exponent notation without a dot", "return tostring(tonumber(ARGV[1]))", []any{"1e-07"}, "1e-07", "nil", false},
		{"arithmetic coercion parses it", "return string.format('%.17g', ARGV[1] + 0)", []any{"1e-07"}, "9.9999999999999995e-08", "9.9999999999999995e-08", false},
		{"tostring of a fraction", "return tostring(0.1 + 0.2)", nil, "0.3", "0.30000000000000004", false},
		{"tostring of a large integer", "return tostring(1e15)", nil, "1e+15", "1000000000000000", false},
		{"concatenation of a fraction", "return 'x' .. 1 / 3", nil, "x0.33333333333333", "x0.3333333333333333", false},
		{"%.17g of infinity", "return string.format('%.17g', 1 / 0)", nil, "inf", "+Inf", false},
		{"math.huge is not infinite", "return tostring(math.huge > 1.7976931348623157e308)", nil, "true", "false", false},
		{"score text in redis.call replies", "redis.call('ZADD', 'gz', '0.1', 'm') return redis.call('ZSCORE', 'gz', 'm')", nil, "0.10000000000000001", "0.1", false},
		{"bit library", "return type(bit)", nil, "table", "error: ERR Error compiling script", true},
		{"runtime error text", "redis.call('SET', 'gs', '1') return redis.call('ZADD', 'gs', 1, 'x')", nil, "error: WRONGTYPE", "error: ERR Error compiling script", true},
		{"ZADD nan", "return redis.call('ZADD', 'gn', 'nan', 'm')", nil, "error: ERR value is not a valid float", "1", true},
	}
	for _, g := range gaps {
		r, m := eval(real, g.src, g.args...), eval(mini, g.src, g.args...)
		if g.prefixesOnly {
			if !strings.HasPrefix(r, g.real) || !strings.HasPrefix(m, g.mini) {
				t.Errorf("%s: redis-server %q (want prefix %q), miniredis %q (want prefix %q)", g.name, r, g.real, m, g.mini)
			}
			continue
		}
		if r != g.real || m != g.mini {
			t.Errorf("%s: redis-server %q (want %q), miniredis %q (want %q)", g.name, r, g.real, m, g.mini)
		}
	}

	// RESP3 (go-redis v9's default): WITHSCORES replies are pairs from
	// redis-server, a flat list from miniredis; the typed commands agree.
	for _, c := range []*redis.Client{real, mini} {
		c.ZAdd(ctx, "r3", redis.Z{Score: 1, Member: "a"}, redis.Z{Score: 2, Member: "b"})
	}
	rr, _ := real.Do(ctx, "ZREVRANGE", "r3", 0, -1, "WITHSCORES").Slice()
	mr, _ := mini.Do(ctx, "ZREVRANGE", "r3", 0, -1, "WITHSCORES").Slice()
	if len(rr) != 2 || len(mr) != 4 {
		t.Errorf("raw RESP3 WITHSCORES: redis-server %v, miniredis %v", rr, mr)
	}
	tr := real.ZRevRangeWithScores(ctx, "r3", 0, -1).Val()
	tm := mini.ZRevRangeWithScores(ctx, "r3", 0, -1).Val()
	if !reflect.DeepEqual(tr, tm) || len(tr) != 2 {
		t.Errorf("typed WITHSCORES: redis-server %v, miniredis %v", tr, tm)
	}

	// A user's state as the store keeps it (a blob written with SET ... EX
	// by the guarded write) and as an older version kept it (a weights
	// zset, migrated by the user's next write with UNLINK): the same
	// profiles from both servers.
	var profiles [2][]store.Profile
	for i, c := range []*redis.Client{real, mini} {
		st := store.New(c, testopts.Store(func(o *store.Options) { o.Prefix, o.UserTTL = "gaps:", time.Hour }))
		k := st.Keys()
		var zs []redis.Z
		for k := range 200 {
			zs = append(zs, redis.Z{Score: float64(k*37%101) / 3, Member: "i" + strconv.Itoa(k)})
		}
		c.ZAdd(ctx, k.UserWeights("old"), zs...)
		c.HSet(ctx, k.UserMeta("old"), "n", 200, "f:0", 7)
		ts := time.Date(2026, 1, 2, 3, 4, 5, 0, time.UTC).UnixMilli()
		var ops []store.Op
		for j := range 30 {
			ops = append(ops, store.Op{Offset: int64(8 + j), User: []string{"old", "new"}[j%2], Item: "i" + strconv.Itoa(j*7%40), Type: event.Purchase, TS: ts + int64(j)})
		}
		before, err := st.Profiles(ctx, []string{"old"}, 200, 5)
		if err != nil {
			t.Fatal(err)
		}
		if _, err := st.Apply(ctx, 0, ops); err != nil {
			t.Fatal(err)
		}
		if n := c.Exists(ctx, k.UserWeights("old"), k.UserState("new")).Val(); n != 1 || c.TTL(ctx, k.UserState("old")).Val() <= 0 {
			t.Errorf("client %d: the old user's weights zset not replaced by a blob with a TTL", i)
		}
		after, err := st.Profiles(ctx, []string{"old", "new"}, 200, 5)
		if err != nil {
			t.Fatal(err)
		}
		profiles[i] = append(before, after...)
	}
	if !reflect.DeepEqual(profiles[0], profiles[1]) || len(profiles[0][0].Items) != 200 || len(profiles[0][2].Purchased) != 15 {
		t.Errorf("profiles: redis-server %v, miniredis %v", profiles[0], profiles[1])
	}
}

func TestMiniredisTTLsElapse(t *testing.T) {
	t.Parallel()
	mr, err := embedded.StartMiniredis()
	if err != nil {
		t.Fatal(err)
	}
	defer mr.Close()
	c := redis.NewClient(&redis.Options{Addr: mr.Addr})
	defer c.Close()
	ctx := context.Background()
	if err := c.Set(ctx, "k", "v", 300*time.Millisecond).Err(); err != nil {
		t.Fatal(err)
	}
	if err := c.Set(ctx, "keep", "v", time.Hour).Err(); err != nil {
		t.Fatal(err)
	}
	deadline := time.Now().Add(5 * time.Second)
	for c.Exists(ctx, "k").Val() == 1 {
		if time.Now().After(deadline) {
			t.Fatal("key with a 300ms TTL still there after 5s")
		}
		time.Sleep(50 * time.Millisecond)
	}
	if c.Exists(ctx, "keep").Val() != 1 {
		t.Fatal("key with a 1h TTL gone")
	}
	if err := mr.Close(); err != nil {
		t.Fatal(err)
	}
	if err := mr.Close(); err != nil {
		t.Fatal(err)
	}
}

func TestStartRedisFallsBackToMiniredis(t *testing.T) {
	t.Setenv("PATH", t.TempDir())
	r, err := embedded.StartRedis(context.Background())
	if err != nil {
		t.Fatal(err)
	}
	defer r.Close()
	if r.Kind != embedded.KindMiniredis || r.Fallback == nil || !strings.Contains(r.Fallback.Error(), "not found") {
		t.Fatalf("kind %s, fallback %v", r.Kind, r.Fallback)
	}
	c := redis.NewClient(&redis.Options{Addr: r.Addr})
	defer c.Close()
	if err := c.Ping(context.Background()).Err(); err != nil {
		t.Fatal(err)
	}
}

func TestStartKafka(t *testing.T) {
	t.Parallel()
	k, err := embedded.StartKafka(2, "events", "dlq")
	if err != nil {
		t.Fatal(err)
	}
	defer k.Close()
	if len(k.Brokers) != 1 || !strings.HasPrefix(k.Brokers[0], "127.0.0.1:") {
		t.Fatalf("brokers %v", k.Brokers)
	}
	w := &kafka.Writer{Addr: kafka.TCP(k.Brokers...), Topic: "events", Balancer: &kafka.Hash{}, BatchTimeout: time.Millisecond, RequiredAcks: kafka.RequireAll}
	defer w.Close()
	ctx, cancel := context.WithTimeout(context.Background(), 30*time.Second)
	defer cancel()
	var msgs []kafka.Message
	for i := range 10 {
		msgs = append(msgs, kafka.Message{Key: []byte(fmt.Sprint("u", i)), Value: []byte(fmt.Sprint(i))})
	}
	if err := w.WriteMessages(ctx, msgs...); err != nil {
		t.Fatal(err)
	}
	// A group member with a session timeout below kfake's default minimum.
	r := kafka.NewReader(kafka.ReaderConfig{
		Brokers: k.Brokers, GroupID: "g", Topic: "events",
		MaxWait: 50 * time.Millisecond, SessionTimeout: time.Second, HeartbeatInterval: 200 * time.Millisecond,
	})
	defer r.Close()
	seen := map[string]bool{}
	for len(seen) < len(msgs) {
		m, err := r.FetchMessage(ctx)
		if err != nil {
			t.Fatalf("after %d messages: %v", len(seen), err)
		}
		if seen[string(m.Value)] {
			t.Fatalf("duplicate %s", m.Value)
		}
		seen[string(m.Value)] = true
		if err := r.CommitMessages(ctx, m); err != nil {
			t.Fatal(err)
		}
	}
	if _, err := embedded.StartKafka(0, "x"); err == nil {
		t.Fatal("0 partitions accepted")
	}
}
