-- Applies one partition's events for one user, fenced per source partition.
-- KEYS: 1 weights zset (item -> scaled weight), 2 log list (newest first,
--       2·log_cap entries: readers use the first log_cap),
--       3 meta hash (f:<partition> fences, n, ts), 4 purchased zset (item -> ts)
-- ARGV: 1 partition, 2 user_items_cap, 3 log_cap, 4 history_n, 5 ttl seconds,
--       6 purchase type name, 7 event count, then 5 per event:
--       offset, item, type, ts, weight (all strings; offsets ascending)
-- Returns one {status, new, {history...}} per event: status 1 applied now,
-- 0 applied before (fenced, answered from the log), -1 fenced and no longer
-- in the log. history is the user's distinct earlier items (newest first, at
-- most history_n) when the event made the item new for the user.
local p = ARGV[1]
local fkey = 'f:' .. p
local fenceStr = redis.call('HGET', KEYS[3], fkey)
local fence = -1
if fenceStr then fence = tonumber(fenceStr) end
local cap = tonumber(ARGV[2])
local logcap = tonumber(ARGV[3])
local M = tonumber(ARGV[4])
local ttl = tonumber(ARGV[5])
local purchase = ARGV[6]
local n = tonumber(ARGV[7])

local log = nil
local function loadlog()
  if log == nil then log = redis.call('LRANGE', KEYS[2], 0, -1) end
end
-- entry: offset|partition|type|ts|new|item (item last: it may hold '|')
local function entryItem(e)
  local pos = 0
  for _ = 1, 5 do pos = string.find(e, '|', pos + 1, true) end
  return string.sub(e, pos + 1)
end
local function entryNew(e)
  local pos = 0
  for _ = 1, 4 do pos = string.find(e, '|', pos + 1, true) end
  return string.sub(e, pos + 1, pos + 1)
end
-- history scans at most logcap entries older than the event (from on), so
-- the answer does not depend on batching; the list keeps 2·logcap entries,
-- so an event replayed after up to logcap newer ones of the user were
-- applied (a crash before the commit) gets the same answer as when it was
-- first applied.
local function history(from, exclude)
  local seen = {}
  local res = {}
  for k = from, math.min(#log, from + logcap - 1) do
    local it = entryItem(log[k])
    if it ~= exclude and not seen[it] then
      seen[it] = true
      res[#res + 1] = it
      if #res >= M then break end
    end
  end
  return res
end

local out = {}
local applied = 0
local lastts = 0
local newEntries = {}
for k = 0, n - 1 do
  local b = 8 + k * 5
  local offStr = ARGV[b]
  local off = tonumber(offStr)
  local item = ARGV[b + 1]
  local typ = ARGV[b + 2]
  local ts = ARGV[b + 3]
  local w = ARGV[b + 4]
  loadlog()
  if off <= fence then
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
    if not redis.call('ZSCORE', KEYS[1], item) then
      isnew = 1
      h = history(1, item)
    end
    redis.call('ZINCRBY', KEYS[1], w, item)
    if typ == purchase then redis.call('ZADD', KEYS[4], ts, item) end
    local entry = offStr .. '|' .. p .. '|' .. typ .. '|' .. ts .. '|' .. isnew .. '|' .. item
    table.insert(log, 1, entry)
    newEntries[#newEntries + 1] = entry
    fence = off
    fenceStr = offStr
    applied = applied + 1
    if tonumber(ts) > lastts then lastts = tonumber(ts) end
    out[#out + 1] = {1, isnew, h}
  end
end
if applied > 0 then
  for i = 1, #newEntries, 1000 do
    redis.call('LPUSH', KEYS[2], unpack(newEntries, i, math.min(i + 999, #newEntries)))
  end
  redis.call('LTRIM', KEYS[2], 0, 2 * logcap - 1)
  local prevts = tonumber(redis.call('HGET', KEYS[3], 'ts') or '0')
  if lastts < prevts then lastts = prevts end
  redis.call('HSET', KEYS[3], fkey, fenceStr, 'ts', string.format('%d', lastts))
  redis.call('HINCRBY', KEYS[3], 'n', applied)
  local card = redis.call('ZCARD', KEYS[1])
  if card > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - cap - 1) end
  card = redis.call('ZCARD', KEYS[4])
  if card > cap then redis.call('ZREMRANGEBYRANK', KEYS[4], 0, card - cap - 1) end
  if ttl > 0 then
    for i = 1, 4 do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return out
