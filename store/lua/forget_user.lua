-- Erases one user's state and leaves an erasure tombstone, atomically.
-- KEYS: 1 state blob, 2 meta hash, 3 list, 4 weights zset, 5 log list,
--       6 purchased zset (4-6: the keys of a user written before the
--       blob), then any more keys of the user to delete (shown items,
--       attribution log)
-- ARGV: 1 erasure time (unix ms), 2 tombstone ttl seconds
-- The meta hash is replaced by the tombstone: the per-partition fences and
-- gone = erasure time. Ingest drops every event whose time is at or
-- before gone, so a batch in flight or a replay cannot bring the state
-- back. The tombstone expires after the ttl.
-- Returns {blob (false when absent), log entries (newest first), weighted
--          items, purchased items (these three of the keys 4-6),
--          events applied (meta n), keys deleted}.
local blob = redis.call('GET', KEYS[1])
local log = redis.call('LRANGE', KEYS[5], 0, -1)
local items = redis.call('ZRANGE', KEYS[4], 0, -1)
local bought = redis.call('ZRANGE', KEYS[6], 0, -1)
local meta = redis.call('HGETALL', KEYS[2])
local n = '0'
local fences = {}
for i = 1, #meta, 2 do
  local f = meta[i]
  if string.sub(f, 1, 2) == 'f:' then
    fences[#fences + 1] = f
    fences[#fences + 1] = meta[i + 1]
  elseif f == 'n' then
    n = meta[i + 1]
  end
end
local deleted = redis.call('DEL', unpack(KEYS))
redis.call('HSET', KEYS[2], 'gone', ARGV[1], unpack(fences))
redis.call('EXPIRE', KEYS[2], tonumber(ARGV[2]))
return {blob, log, items, bought, n, deleted}
