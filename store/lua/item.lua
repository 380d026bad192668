-- Applies one partition's contributions to one item, summed by the caller,
-- fenced per source partition.
-- KEYS: 1 recent users zset (user -> ts), 2 co-occurrence row (a list of
--       entries folded by its readers, see store/cooc.go),
--       3 meta hash (f:<partition> fences, n decayed distinct users, pop
--       decayed weight, c, o, x, k), 4 next-item row (a list like the
--       co-occurrence row, see store/next.go)
-- ARGV: 1 partition, 2 item_users_cap, 3 ttl seconds, 4 now (unix seconds,
--       for TTL renewal), 5 first offset, 6 last offset (of the partition's
--       events summed here), 7 popularity delta ('' for none),
--       8 distinct-users delta ('' for none), 9 newest and 10 oldest event
--       time of the recent users (0 for none), 11 the row entry ('' for
--       none), 12 the next-item row entry ('' for none), then ts, user
--       pairs: the recent users, each once
-- The sums cover every contribution of offsets first..last to this item,
-- so they apply whole or not at all: a fence at or past last means all of
-- them were applied, a fence before first none; a fence in between answers
-- the fence, and the caller sums again the contributions after it.
-- Returns {1, row length, next-item row length} applied, {0, 0} already
-- applied, {2, fence}.
-- With ttl > 0, users whose last interaction (event time) is older than ttl
-- before the newest applied one are removed from the recent users zset.
--
-- Bounds kept in the meta hash spare the zset commands that would find
-- nothing to do: c is at least the zset's size (so ZCARD runs only when c
-- passes the cap) and o at most its lowest score (so the retention sweep
-- runs only when o is older than the cutoff). Both stay bounds when
-- members are removed elsewhere (erasure, expiry); a missing one counts
-- as unknown.
--
-- Expiry as for users (store/userstate.go): x is when the TTLs were last renewed, k a bitmask
-- of the keys that got one then (1 recent users, 2 co-occurrence, 4 meta,
-- 8 next-item row).
local p = ARGV[1]
local fkey = 'f:' .. p
local meta = redis.call('HMGET', KEYS[3], fkey, 'pop', 'n', 'x', 'k', 'c', 'o')
if meta[1] then
  local fence = tonumber(meta[1])
  if fence >= tonumber(ARGV[6]) then return {0, 0} end
  if fence >= tonumber(ARGV[5]) then return {2, fence} end
end
local ucap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local maxts = tonumber(ARGV[9])
local hasUsers = #ARGV > 12
local hasRow = ARGV[11] ~= ''
local hasNext = ARGV[12] ~= ''
local rowLen = 0
if hasRow then rowLen = redis.call('RPUSH', KEYS[2], ARGV[11]) end
local nextLen = 0
if hasNext then nextLen = redis.call('RPUSH', KEYS[4], ARGV[12]) end
local fields = {fkey, ARGV[6]}
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'pop'
  fields[#fields + 1] = string.format('%.17g', (tonumber(meta[2] or '0')) + tonumber(ARGV[7]))
end
if ARGV[8] ~= '' then
  fields[#fields + 1] = 'n'
  fields[#fields + 1] = string.format('%.17g', (tonumber(meta[3] or '0')) + tonumber(ARGV[8]))
end
if hasUsers then
  local added = 0
  for i = 13, #ARGV, 1000 do
    added = added + redis.call('ZADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
  local card = tonumber(meta[6] or '-1')
  if card >= 0 then card = card + added end
  local low = tonumber(meta[7] or '')
  local mints = tonumber(ARGV[10])
  if low and mints < low then low = mints end
  if ttl > 0 and maxts > 0 then
    -- retention: users whose last interaction with this item is older
    -- than ttl (in event time) leave the recent-user index
    local cutoff = maxts - ttl * 1000
    if low == nil or low < cutoff then
      local gone = redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', cutoff))
      if card >= 0 then card = card - gone end
      local first = redis.call('ZRANGE', KEYS[1], 0, 0, 'WITHSCORES')
      low = cutoff
      if first[2] then low = tonumber(first[2]) end
    end
  end
  card = capSize(KEYS[1], card, ucap)
  fields[#fields + 1] = 'c'
  fields[#fields + 1] = string.format('%d', card)
  if low then
    fields[#fields + 1] = 'o'
    fields[#fields + 1] = string.format('%d', low)
  end
end
local renewMeta = false
if ttl > 0 then
  local x = tonumber(meta[4] or '-1')
  local mask = tonumber(meta[5] or '0')
  if x < 0 or now - x >= math.floor(ttl / 64) then
    mask = 4 + redis.call('EXPIRE', KEYS[1], ttl) + 2 * redis.call('EXPIRE', KEYS[2], ttl) + 8 * redis.call('EXPIRE', KEYS[4], ttl)
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = string.format('%d', now)
    fields[#fields + 1] = 'k'
    fields[#fields + 1] = string.format('%d', mask)
    renewMeta = true
  else
    local m2 = mask
    if hasUsers and mask % 2 < 1 then m2 = m2 + redis.call('EXPIRE', KEYS[1], ttl) end
    if hasRow and mask % 4 < 2 then m2 = m2 + 2 * redis.call('EXPIRE', KEYS[2], ttl) end
    if hasNext and mask % 16 < 8 then m2 = m2 + 8 * redis.call('EXPIRE', KEYS[4], ttl) end
    if m2 ~= mask then
      fields[#fields + 1] = 'k'
      fields[#fields + 1] = string.format('%d', m2)
    end
  end
end
redis.call('HSET', KEYS[3], unpack(fields))
if renewMeta then redis.call('EXPIRE', KEYS[3], ttl) end
return {1, rowLen, nextLen}
