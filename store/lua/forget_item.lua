-- Removes one erased user's contribution from one item, once.
-- KEYS: 1 recent users zset, 2 co-occurrence row (a list, store/cooc.go),
--       3 meta hash, 4 guard key (one per erasure and item; makes a resend
--       harmless), 5 next-item row (a list, store/next.go)
-- ARGV: 1 user, 2 degree to subtract, 3 popularity to subtract,
--       4 guard ttl seconds, 5 the erasure's row entry ('' for none): the
--       counts to subtract, folded by the row's readers, 6 the erasure's
--       next-item row entry ('' for none)
-- Counts never go below zero: the degree and popularity stop at zero, and
-- a co-occurrence entry at or below a rounding residue of its former value
-- is removed when the row is folded.
-- An item written by an item owner (store/itemowner.go) has a version v
-- in its meta hash: the erasure increments it, so that the owner's copy
-- of the item, read before, fails its guarded write and is read again.
-- Returns {removed from the index (0/1), erasure entry appended (0/1)}.
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
if ARGV[5] ~= '' and redis.call('EXISTS', KEYS[2]) == 1 then
  redis.call('RPUSH', KEYS[2], ARGV[5])
  changed = 1
end
if ARGV[6] and ARGV[6] ~= '' and redis.call('EXISTS', KEYS[5]) == 1 then
  redis.call('RPUSH', KEYS[5], ARGV[6])
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
if redis.call('HGET', KEYS[3], 'v') then
  redis.call('HINCRBY', KEYS[3], 'v', 1)
end
return {removed, changed}
