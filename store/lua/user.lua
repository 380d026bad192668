-- Applies one partition's events for one user, fenced per source partition.
-- KEYS: 1 weights zset (item -> scaled weight), 2 log list (newest first,
--       2·log_cap entries: readers use the first log_cap),
--       3 meta hash (f:<partition> fences, n, ts, x, k, c), 4 purchased zset (item -> ts)
-- ARGV: 1 partition, 2 user_items_cap, 3 log_cap, 4 history_n, 5 ttl seconds,
--       6 purchase type name, 7 now (unix seconds, for TTL renewal),
--       8 event count, then 5 per event:
--       offset, item, type, ts, weight (all strings; offsets ascending)
-- Returns one {status, new, {history...}} per event: status 1 applied now,
-- 0 applied before (fenced, answered from the log), -1 fenced and no longer
-- in the log. history is the user's distinct earlier items (newest first, at
-- most history_n) when the event made the item new for the user.
-- Status -2: dropped, the user was erased (meta field gone = erasure time,
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
local M = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local purchase = ARGV[6]
local now = tonumber(ARGV[7])
local n = tonumber(ARGV[8])

-- The stored log is read only when an event is fenced (all of it: the
-- entry may be anywhere in it) or makes an item new (its newest logcap
-- entries: an applied event's history scans no more, see history).
local log = nil
local logAll = false
local function loadlog(all)
  if log == nil or (all and not logAll) then
    local last = logcap - 1
    if all then last = -1 end
    log = redis.call('LRANGE', KEYS[2], 0, last)
    logAll = all or #log < logcap
  end
end
-- entry: offset|partition|type|ts|new|item (item last: it may hold '|');
-- one pattern match each (a third cheaper than five plain finds)
local function entryItem(e)
  return string.match(e, '^[^|]*|[^|]*|[^|]*|[^|]*|[^|]*|(.*)$')
end
local function entryNew(e)
  return string.match(e, '^[^|]*|[^|]*|[^|]*|[^|]*|(.)')
end
-- pending: entries added by this call, oldest first (newer than the log),
-- and their items; logItems: the items of log entries, parsed once.
local pending = {}
local pendingItems = {}
local logItems = {}
local function logItem(k)
  local it = logItems[k]
  if it == nil then
    it = entryItem(log[k])
    logItems[k] = it
  end
  return it
end
-- history returns the distinct items, newest first, of pending entries and
-- of log entries from index from on, without exclude, at most M, scanning
-- at most logcap entries older than the event: the answer does not depend
-- on batching, and since the list keeps 2·logcap entries an event replayed
-- after fewer than logcap newer events of the user were applied (a crash
-- before the commit) gets the same answer as when it was first applied. An
-- applied event's history needs only the newest logcap - #pending entries.
local function history(from, exclude)
  local seen = {}
  local res = {}
  local scanned = 0
  local function take(it)
    scanned = scanned + 1
    if it ~= exclude and not seen[it] then
      seen[it] = true
      res[#res + 1] = it
    end
    return #res >= M or scanned >= logcap
  end
  for k = #pendingItems, 1, -1 do
    if take(pendingItems[k]) then return res end
  end
  for k = from, #log do
    if take(logItem(k)) then return res end
  end
  return res
end

-- The weights of the batch's items, read once (ZMSCORE) and written once
-- (ZADD) instead of a ZSCORE and a ZINCRBY per event; sums as ZINCRBY's.
local witems = {}
do
  local seen = {}
  for k = 0, n - 1 do
    local b = 9 + k * 5
    local it = ARGV[b + 1]
    if tonumber(ARGV[b]) > fence and tonumber(ARGV[b + 3]) > gone and not seen[it] then
      seen[it] = true
      witems[#witems + 1] = it
    end
  end
end
local weights = getScores(KEYS[1], witems)

local out = {}
local applied = 0
local lastts = 0
local newItems = 0
local bought = false
for k = 0, n - 1 do
  local b = 9 + k * 5
  local offStr = ARGV[b]
  local off = tonumber(offStr)
  local item = ARGV[b + 1]
  local typ = ARGV[b + 2]
  local ts = ARGV[b + 3]
  local w = ARGV[b + 4]
  if tonumber(ts) <= gone then
    out[#out + 1] = {-2, 0, {}}
  elseif off <= fence then
    -- Fenced events come first (offsets ascend), so pending is empty here.
    loadlog(true)
    local prefix = offStr .. '|' .. p .. '|'
    local found = -1
    for idx = 1, #log do
      if string.sub(log[idx], 1, #prefix) == prefix then found = idx break end
    end
    if found < 0 then
      out[#out + 1] = {-1, 0, {}}
    elseif entryNew(log[found]) == '1' then
      out[#out + 1] = {0, 1, history(found + 1, item)}
    else
      out[#out + 1] = {0, 0, {}}
    end
  else
    local isnew = 0
    local h = {}
    if weights[item] == nil then
      isnew = 1
      newItems = newItems + 1
      loadlog(false)
      h = history(1, item)
    end
    weights[item] = (weights[item] or 0) + tonumber(w)
    if typ == purchase then
      redis.call('ZADD', KEYS[4], ts, item)
      bought = true
    end
    pending[#pending + 1] = offStr .. '|' .. p .. '|' .. typ .. '|' .. ts .. '|' .. isnew .. '|' .. item
    pendingItems[#pendingItems + 1] = item
    fence = off
    fenceStr = offStr
    applied = applied + 1
    if tonumber(ts) > lastts then lastts = tonumber(ts) end
    out[#out + 1] = {1, isnew, h}
  end
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
return out
