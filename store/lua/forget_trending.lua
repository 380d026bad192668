-- Removes one erased user's contribution from the trending zset, once.
-- KEYS: 1 trending zset, 2 guard key (one per erasure; makes a resend
--       harmless)
-- ARGV: 1 guard ttl seconds, then pairs: item, weight to subtract (the sum
--       of weight·2^((ts−epoch)/half-life) over the user's logged events of
--       the item: exactly what lua/trending.lua added for them)
-- Weights never go below zero: an entry at or below a rounding residue of
-- its former value is removed. Items no longer in the zset (trimmed by the
-- cap) are skipped.
-- Returns the number of entries changed.
if redis.call('SET', KEYS[2], '1', 'NX', 'EX', tonumber(ARGV[1])) == false then
  return 0
end
local changed = 0
for i = 2, #ARGV, 2 do
  local cur = redis.call('ZSCORE', KEYS[1], ARGV[i])
  if cur then
    cur = tonumber(cur)
    local v = cur - tonumber(ARGV[i + 1])
    if v <= 1e-9 * cur then
      redis.call('ZREM', KEYS[1], ARGV[i])
    else
      redis.call('ZADD', KEYS[1], string.format('%.17g', v), ARGV[i])
    end
    changed = changed + 1
  end
end
return changed
