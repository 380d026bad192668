-- Applies one partition's contributions to one item, fenced per source partition.
-- KEYS: 1 recent users zset (user -> ts), 2 co-occurrence row (a list of
--       entries folded by its readers, see store/cooc.go),
--       3 meta hash (f:<partition> fences, n decayed distinct users, pop decayed weight, x, k)
-- ARGV: 1 partition, 2 item_users_cap, 3 ttl seconds,
--       4 now (unix seconds, for TTL renewal), 5 count, then
--       7 per contribution (offsets ascending, at most one per offset):
--       offset, user ('' for a co-occurrence-only contribution), ts,
--       weight ('' for none), new ('1' when the event made the pair new),
--       decay factor, co-items joined by "\n" ('' for none)
-- With ttl > 0, users whose last interaction (event time) is older than ttl
-- before the newest applied one are removed from the recent users zset.
-- Each applied contribution with co-items is appended to the row as
-- 'c<partition>:<offset>|<decay factor>|<co-items>': no arithmetic here.
-- Returns the length of the row list when this call appended to it, else 0
-- (the caller folds rows that grew long).
--
-- Expiry as in user.lua: x is when the TTLs were last renewed, k a bitmask
-- of the keys that got one then (1 recent users, 2 co-occurrence, 4 meta).
local p = ARGV[1]
local fkey = 'f:' .. p
local meta = redis.call('HMGET', KEYS[3], fkey, 'pop', 'n', 'x', 'k')
local fenceStr = meta[1]
local fence = -1
if fenceStr then fence = tonumber(fenceStr) end
local ucap = tonumber(ARGV[2])
local ttl = tonumber(ARGV[3])
local now = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local applied = 0
local pop = 0
local hasPop = false
local deg = 0
local coEntries = {}
local maxts = 0
local zargs = {}
for k = 0, n - 1 do
  local b = 6 + k * 7
  local off = tonumber(ARGV[b])
  if off > fence then
    local user = ARGV[b + 1]
    if user ~= '' then
      zargs[#zargs + 1] = ARGV[b + 2]
      zargs[#zargs + 1] = user
      if tonumber(ARGV[b + 2]) > maxts then maxts = tonumber(ARGV[b + 2]) end
    end
    if ARGV[b + 3] ~= '' then
      pop = pop + tonumber(ARGV[b + 3])
      hasPop = true
    end
    local d = tonumber(ARGV[b + 5])
    if ARGV[b + 4] == '1' then deg = deg + d end
    if ARGV[b + 6] ~= '' then
      coEntries[#coEntries + 1] = 'c' .. p .. ':' .. ARGV[b] .. '|' .. ARGV[b + 5] .. '|' .. ARGV[b + 6]
    end
    fence = off
    fenceStr = ARGV[b]
    applied = applied + 1
  end
end
if applied > 0 then
  local added = 0
  for i = 1, #zargs, 1000 do
    added = added + redis.call('ZADD', KEYS[1], unpack(zargs, i, math.min(i + 999, #zargs)))
  end
  local rowLen = 0
  for i = 1, #coEntries, 1000 do
    rowLen = redis.call('RPUSH', KEYS[2], unpack(coEntries, i, math.min(i + 999, #coEntries)))
  end
  local fields = {fkey, fenceStr}
  if hasPop and pop ~= 0 then
    fields[#fields + 1] = 'pop'
    fields[#fields + 1] = string.format('%.17g', (tonumber(meta[2] or '0')) + pop)
  end
  if deg ~= 0 then
    fields[#fields + 1] = 'n'
    fields[#fields + 1] = string.format('%.17g', (tonumber(meta[3] or '0')) + deg)
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
      if #zargs > 0 and mask % 2 < 1 then m2 = m2 + redis.call('EXPIRE', KEYS[1], ttl) end
      if #coEntries > 0 and mask % 4 < 2 then m2 = m2 + 2 * redis.call('EXPIRE', KEYS[2], ttl) end
      if m2 ~= mask then
        fields[#fields + 1] = 'k'
        fields[#fields + 1] = string.format('%d', m2)
      end
    end
  end
  redis.call('HSET', KEYS[3], unpack(fields))
  if renewMeta then redis.call('EXPIRE', KEYS[3], ttl) end
  return rowLen
end
return 0
