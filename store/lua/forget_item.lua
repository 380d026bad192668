-- Removes one erased user's contribution from one item, once.
-- KEYS: 1 recent users zset, 2 co-occurrence zset, 3 meta hash,
--       4 guard key (one per erasure and item; makes a resend harmless)
-- ARGV: 1 user, 2 degree to subtract, 3 popularity to subtract,
--       4 guard ttl seconds, then pairs: other item, count to subtract
-- Counts never go below zero: a co-occurrence entry at or below a
-- rounding residue of its former value is removed.
-- Returns {removed from the index (0/1), co-occurrence entries changed}.
if redis.call('SET', KEYS[4], '1', 'NX', 'EX', tonumber(ARGV[4])) == false then
  return {0, 0}
end
local removed = redis.call('ZREM', KEYS[1], ARGV[1])
local function sub(cur, d)
  local v = cur - d
  if v <= 1e-9 * cur then return 0 end
  return v
end
local changed = 0
for i = 5, #ARGV, 2 do
  local cur = redis.call('ZSCORE', KEYS[2], ARGV[i])
  if cur then
    local v = sub(tonumber(cur), tonumber(ARGV[i + 1]))
    if v == 0 then
      redis.call('ZREM', KEYS[2], ARGV[i])
    else
      redis.call('ZADD', KEYS[2], string.format('%.17g', v), ARGV[i])
    end
    changed = changed + 1
  end
end
for _, f in ipairs({{'n', 2}, {'pop', 3}}) do
  local d = tonumber(ARGV[f[2]])
  if d > 0 then
    local cur = redis.call('HGET', KEYS[3], f[1])
    if cur then
      redis.call('HSET', KEYS[3], f[1], string.format('%.17g', sub(tonumber(cur), d)))
    end
  end
end
return {removed, changed}
