-- Replaces the first n entries of an item's co-occurrence row (a list, see
-- store/cooc.go) by their fold, if they are still its first entries:
-- another process may have folded them meanwhile. Entries are unique (an
-- event's offset, an erasure's id), so an unchanged n-th entry means an
-- unchanged prefix.
-- KEYS: 1 the row
-- ARGV: 1 n, 2 the first entry, 3 the n-th entry, 4 the folded row entry
--       ('' when nothing is left)
-- Returns 1 replaced, 0 left alone.
local n = tonumber(ARGV[1])
if redis.call('LINDEX', KEYS[1], n - 1) ~= ARGV[3] or redis.call('LINDEX', KEYS[1], 0) ~= ARGV[2] then
  return 0
end
local ttl = redis.call('PTTL', KEYS[1])
redis.call('LTRIM', KEYS[1], n, -1)
if ARGV[4] ~= '' then redis.call('LPUSH', KEYS[1], ARGV[4]) end
if ttl > 0 and redis.call('EXISTS', KEYS[1]) == 1 then redis.call('PEXPIRE', KEYS[1], ttl) end
return 1
