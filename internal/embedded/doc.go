// Package embedded starts the servers `recstream demo` and the benchmark run
// on: a Kafka-protocol broker in process (kfake, from franz-go) and a Redis.
// It does not import testing.
//
// [StartRedis] runs redis-server from PATH on a free 127.0.0.1 port in a
// temporary directory when there is one (Kind "redis-server"), otherwise
// miniredis in process (Kind "miniredis", with Fallback saying why).
// [StartKafka] runs a one-broker kfake cluster on a free 127.0.0.1 port with
// the topics seeded and a minimum group session timeout of 100 ms instead of
// kfake's 6 s.
//
// # miniredis
//
// miniredis v2.40.0 (Lua by gopher-lua v1.1.1) runs the store's scripts with
// the same results and state as redis-server 7: EVALSHA and SCRIPT LOAD
// (NOSCRIPT for an unknown sha, so go-redis' Script works), redis.call on
// ZINCRBY, ZADD, ZREVRANGE WITHSCORES, ZREMRANGEBYRANK, ZCARD, ZSCORE, HGET,
// HSET (several fields), HMGET, HINCRBY, HINCRBYFLOAT, LPUSH (several
// values), LTRIM, LRANGE, EXPIRE, SET with EX, GET; nil replies as false;
// tonumber, tostring of integers, string.format with %.17g and %d,
// string.find/sub/gmatch, table.concat, unpack, cjson. The tests of this
// package check this, and pin each difference below:
//
//   - tonumber returns nil for exponent notation without a dot ("1e-07",
//     "1e+20", "5e0"); Redis returns the number. Arithmetic coercion
//     (ARGV[i] + 0) parses them on both. strconv.FormatFloat(f, 'g', 17, 64)
//     makes such strings only for values of at least 1e17 with one
//     significant digit; 'g' with precision -1 makes them often.
//   - Numbers turned into text by tostring or `..` follow Lua 5.1's %.14g on
//     Redis ("0.3", "1e+15") and Go's shortest form in miniredis
//     ("0.30000000000000004", "1000000000000000"). Integers below 1e15 agree;
//     for anything else use string.format('%.17g') or ('%d'), which agree.
//     string.format('%.17g', 1/0) is "inf" on Redis, "+Inf" in miniredis, and
//     math.huge is the largest float64 there, not infinity.
//   - Scores as text, in redis.call replies and RESP2 replies: Redis 7.0
//     writes %.17g ("0.10000000000000001"), miniredis the shortest form
//     ("0.1"); they parse to the same float64.
//   - RESP3 (go-redis v9's default): ZRANGE/ZREVRANGE WITHSCORES come as
//     [member, score] pairs from Redis and as a flat list from miniredis.
//     go-redis' typed ZRangeWithScores/ZRevRangeWithScores read both; raw
//     Do() results differ.
//   - The bit, struct and cmsgpack Lua libraries are missing (cjson is there).
//   - Script errors read "ERR Error compiling script ...: WRONGTYPE ..." in
//     miniredis instead of starting with the command's error ("WRONGTYPE
//     ..."); match error text with strings.Contains, not a prefix.
//   - ZADD accepts "nan" as a score (Redis refuses it).
//   - TTLs only move when miniredis is told to; StartMiniredis moves them
//     every TTLTick (250 ms), so EXPIRE and SET EX take effect in wall-clock
//     time to that granularity.
//   - Speed: every EVAL/EVALSHA builds a new Lua state behind one global
//     lock, about 180 µs per small script against about 50 µs on
//     redis-server (one connection, loopback). Fine for the demo; benchmark
//     against redis-server.
package embedded
