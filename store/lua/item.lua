-- Applies one partition's contributions to one item, summed by the caller,
-- fenced per source partition.
-- KEYS: 1 recent users zset (user -> ts), 2 co-occurrence row (a list of
--       entries folded by its readers, see store/cooc.go),
--       3 meta hash (f:<partition> fences, n decayed distinct users, pop decayed weight, x, k)
-- ARGV: 1 partition, 2 item_users_cap, 3 ttl seconds, 4 now (unix seconds,
--       for TTL renewal), 5 first offset, 6 last offset (of the partition's
--       events summed here), 7 popularity delta ('' for none),
--       8 distinct-users delta ('' for none), 9 newest event time of a
--       recent user (0 for none), 10 the row entry ('' for none), then
--       ts, user pairs: the recent users, each once
-- The sums cover every contribution of offsets first..last to this item,
-- so they apply whole or not at all: a fence at or past last means all of
-- them were applied, a fence before first none; a fence in between answers
-- the fence, and the caller sums again the contributions after it.
-- Returns {1, row length} applied, {0, 0} already applied, {2, fence}.
-- With ttl > 0, users whose last interaction (event time) is older than ttl
-- before the newest applied one are removed from the recent users zset.
--
-- Expiry as in user.lua: x is when the TTLs were last renewed, k a bitmask
-- of the keys that got one then (1 recent users, 2 co-occurrence, 4 meta).
local p = ARGV[1]
local fkey = 'f:' .. p
local meta = redis.call('HMGET', KEYS[3], fkey, 'pop', 'n', 'x', 'k')
if meta[1] then
  local fence = tonumber(meta[1])
  if fence >= tonumber(ARGV[6]) then return {0, 0} end
  if fence >= tonumber(ARGV[5]) then return {2, fence} end
end
local ucap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local maxts = tonumber(ARGV[9])
local hasUsers = #ARGV > 10
local hasRow = ARGV[10] ~= ''
local rowLen = 0
if hasRow then rowLen = redis.call('RPUSH', KEYS[2], ARGV[10]) end
local added = 0
if hasUsers then
  for i = 11, #ARGV, 1000 do
    added = added + redis.call('ZADD', KEYS[1], unpack(ARGV, i, math.min(i + 999, #ARGV)))
  end
end
local fields = {fkey, ARGV[6]}
if ARGV[7] ~= '' then
  fields[#fields + 1] = 'pop'
  fields[#fields + 1] = string.format('%.17g', (tonumber(meta[2] or '0')) + tonumber(ARGV[7]))
end
if ARGV[8] ~= '' then
  fields[#fields + 1] = 'n'
  fields[#fields + 1] = string.format('%.17g', (tonumber(meta[3] or '0')) + tonumber(ARGV[8]))
end
if ttl > 0 and maxts > 0 then
  -- retention: users whose last interaction with this item is older
  -- than ttl (in event time) leave the recent-user index
  redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', maxts - ttl * 1000))
end
if added > 0 then
  local card = redis.call('ZCARD', KEYS[1])
  if card > ucap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - ucap - 1) end
end
local renewMeta = false
if ttl > 0 then
  local x = tonumber(meta[4] or '-1')
  local mask = tonumber(meta[5] or '0')
  if x < 0 or now - x >= math.floor(ttl / 64) then
    mask = 4 + redis.call('EXPIRE', KEYS[1], ttl) + 2 * redis.call('EXPIRE', KEYS[2], ttl)
    fields[#fields + 1] = 'x'
    fields[#fields + 1] = string.format('%d', now)
    fields[#fields + 1] = 'k'
    fields[#fields + 1] = string.format('%d', mask)
    renewMeta = true
  else
    local m2 = mask
    if hasUsers and mask % 2 < 1 then m2 = m2 + redis.call('EXPIRE', KEYS[1], ttl) end
    if hasRow and mask % 4 < 2 then m2 = m2 + 2 * redis.call('EXPIRE', KEYS[2], ttl) end
    if m2 ~= mask then
      fields[#fields + 1] = 'k'
      fields[#fields + 1] = string.format('%d', m2)
    end
  end
end
redis.call('HSET', KEYS[3], unpack(fields))
if renewMeta then redis.call('EXPIRE', KEYS[3], ttl) end
return {1, rowLen}
