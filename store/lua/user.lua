-- Applies one partition's events for one user, fenced per source partition.
-- KEYS: 1 weights zset (item -> scaled weight), 2 log list (newest first,
--       2·log_cap entries: readers use the first log_cap),
--       3 meta hash (f:<partition> fences, n, ts, x, k, c), 4 purchased zset (item -> ts)
-- ARGV: 1 partition, 2 user_items_cap, 3 log_cap, 4 ttl seconds,
--       5 purchase type name, 6 now (unix seconds, for TTL renewal),
--       7 event count, then 5 per event:
--       offset, item, type, ts, weight (all strings; offsets ascending),
--       then '1' when every applied event needs its history (next-item
--       transitions, store/next.go), else '0' or nothing
-- Returns {codes, log}: one code per event, 1 applied now, 2 applied now
-- and made its item new for the user, 0 applied before (fenced); and the
-- stored log as it was before this call (newest first): all of it when an
-- event was fenced (its entry may be anywhere in it), else its newest
-- log_cap entries when an event made an item new (or was applied, when
-- every applied event needs its history), else empty. The
-- processor answers each new item's history and each fenced event from
-- these (store/history.go): the interpreter's time is the scarce one.
-- Code -2: dropped, the user was erased (meta field gone = erasure time,
-- see lua/forget_user.lua) at or after the event's time.
--
-- Expiry: the meta hash keeps x, when the TTLs were last renewed, and k, a
-- bitmask of the keys that got one then (1 weights, 2 log, 4 meta,
-- 8 purchased). TTLs are renewed on a write when x is older than ttl/64 (or
-- missing); between renewals only a key that has none yet gets one. So each
-- key expires between 63/64·ttl and ttl after the user's last write.
local p = ARGV[1]
local fkey = 'f:' .. p
local meta = redis.call('HMGET', KEYS[3], fkey, 'ts', 'n', 'x', 'k', 'gone', 'c')
local fenceStr = meta[1]
local gone = tonumber(meta[6] or '-1')
local fence = -1
if fenceStr then fence = tonumber(fenceStr) end
local cap = tonumber(ARGV[2])
local logcap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local purchase = ARGV[5]
local now = tonumber(ARGV[6])
local n = tonumber(ARGV[7])

-- The weights of the batch's items, read once (ZMSCORE) and written once
-- (ZADD) instead of a ZSCORE and a ZINCRBY per event; sums as ZINCRBY's.
local witems = {}
do
  local seen = {}
  for k = 0, n - 1 do
    local b = 8 + k * 5
    local it = ARGV[b + 1]
    if tonumber(ARGV[b]) > fence and tonumber(ARGV[b + 3]) > gone and not seen[it] then
      seen[it] = true
      witems[#witems + 1] = it
    end
  end
end
local weights = getScores(KEYS[1], witems)

local codes = {}
local applied = 0
local lastts = 0
local newItems = 0
local fenced = false
local bought = false
local pending = {}
for k = 0, n - 1 do
  local b = 8 + k * 5
  local offStr = ARGV[b]
  local off = tonumber(offStr)
  local item = ARGV[b + 1]
  local typ = ARGV[b + 2]
  local ts = ARGV[b + 3]
  local w = ARGV[b + 4]
  if tonumber(ts) <= gone then
    codes[#codes + 1] = -2
  elseif off <= fence then
    codes[#codes + 1] = 0
    fenced = true
  else
    local isnew = 0
    if weights[item] == nil then
      isnew = 1
      newItems = newItems + 1
    end
    weights[item] = (weights[item] or 0) + tonumber(w)
    if typ == purchase then
      redis.call('ZADD', KEYS[4], ts, item)
      bought = true
    end
    -- entry: offset|partition|type|ts|new|item (item last: it may hold '|')
    pending[#pending + 1] = offStr .. '|' .. p .. '|' .. typ .. '|' .. ts .. '|' .. isnew .. '|' .. item
    fence = off
    fenceStr = offStr
    applied = applied + 1
    if tonumber(ts) > lastts then lastts = tonumber(ts) end
    codes[#codes + 1] = 1 + isnew
  end
end
-- The log before this call's entries: an applied event's history scans at
-- most log_cap entries, this call's included, so the newest log_cap do.
local log = {}
if fenced then
  log = redis.call('LRANGE', KEYS[2], 0, -1)
elseif newItems > 0 or (applied > 0 and ARGV[8 + 5 * n] == '1') then
  log = redis.call('LRANGE', KEYS[2], 0, logcap - 1)
end
if applied > 0 then
  setScores(KEYS[1], witems, weights)
  local len = 0
  for i = 1, #pending, 1000 do
    len = redis.call('LPUSH', KEYS[2], unpack(pending, i, math.min(i + 999, #pending)))
  end
  if len > 2 * logcap then redis.call('LTRIM', KEYS[2], 0, 2 * logcap - 1) end
  local prevts = tonumber(meta[2] or '0')
  if lastts < prevts then lastts = prevts end
  local fields = {fkey, fenceStr, 'ts', string.format('%d', lastts), 'n', string.format('%d', tonumber(meta[3] or '0') + applied)}
  if newItems > 0 then
    -- c is at least the weights' size (a bound, as in item.lua)
    local card = tonumber(meta[7] or '-1')
    if card >= 0 then card = card + newItems end
    card = capSize(KEYS[1], card, cap)
    fields[#fields + 1] = 'c'
    fields[#fields + 1] = string.format('%d', card)
  end
  if bought then
    capSize(KEYS[4], -1, cap)
  end
  local renewMeta = false
  if ttl > 0 then
    local x = tonumber(meta[4] or '-1')
    local mask = tonumber(meta[5] or '0')
    if x < 0 or now - x >= math.floor(ttl / 64) then
      redis.call('EXPIRE', KEYS[1], ttl)
      redis.call('EXPIRE', KEYS[2], ttl)
      mask = 7 + 8 * redis.call('EXPIRE', KEYS[4], ttl)
      fields[#fields + 1] = 'x'
      fields[#fields + 1] = string.format('%d', now)
      fields[#fields + 1] = 'k'
      fields[#fields + 1] = string.format('%d', mask)
      renewMeta = true
    elseif bought and mask % 16 < 8 then
      redis.call('EXPIRE', KEYS[4], ttl)
      fields[#fields + 1] = 'k'
      fields[#fields + 1] = string.format('%d', mask + 8)
    end
  end
  redis.call('HSET', KEYS[3], unpack(fields))
  if renewMeta then redis.call('EXPIRE', KEYS[3], ttl) end
end
return {codes, log}
