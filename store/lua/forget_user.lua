-- Erases one user's state and leaves an erasure tombstone, atomically.
-- KEYS: 1 weights zset, 2 log list, 3 meta hash, 4 purchased zset, 5 list,
--       then any more keys of the user to delete (shown items, attribution log)
-- ARGV: 1 erasure time (unix ms), 2 tombstone ttl seconds
-- The meta hash is replaced by the tombstone: the per-partition fences and
-- gone = erasure time. Ingest drops every event whose time is at or
-- before gone, so a batch in flight or a replay cannot bring the state
-- back. The tombstone expires after the ttl.
-- Returns {log entries (newest first), weighted items, purchased items,
--          events applied (meta n), keys deleted}.
local log = redis.call('LRANGE', KEYS[2], 0, -1)
local items = redis.call('ZRANGE', KEYS[1], 0, -1)
local bought = redis.call('ZRANGE', KEYS[4], 0, -1)
local meta = redis.call('HGETALL', KEYS[3])
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
redis.call('HSET', KEYS[3], 'gone', ARGV[1], unpack(fences))
redis.call('EXPIRE', KEYS[3], tonumber(ARGV[2]))
return {log, items, bought, n, deleted}
