-- Applies one partition's events for one user, fenced per source partition.
-- KEYS: 1 weights zset (item -> scaled weight), 2 log list (newest first,
--       2·log_cap entries: readers use the first log_cap),
--       3 meta hash (f:<partition> fences, n, ts, x, k, c), 4 purchased zset (item -> ts),
--       5 shown zset (item -> time last shown), 6 shown hash (see Attribution),
--       7 attribution log list (newest first), 8 the user's list (string)
-- ARGV: 1 partition, 2 user_items_cap, 3 log_cap, 4 ttl seconds,
--       5 purchase type name, 6 now (unix seconds, for TTL renewal),
--       7 event count, 8 attribution window (ms; 0 = no attribution),
--       9 list fallback (1/0), 10 shown cap, then 5 per event:
--       offset, item, type, ts, weight (all strings; offsets ascending);
--       an impression's item is its variant, then source and item per
--       item shown, '\n'-joined (ids never hold control characters);
--       then '1' when every applied event needs its history (next-item
--       transitions, store/next.go), else '0' or nothing
-- Returns {codes, log, recs, attlog}: one code per event, 1 applied now, 2 applied now
-- and made its item new for the user, 0 applied before (fenced); and the
-- stored log as it was before this call (newest first): all of it when an
-- event was fenced (its entry may be anywhere in it), else its newest
-- log_cap entries when an event made an item new (or was applied, when
-- every applied event needs its history), else empty. The
-- processor answers each new item's history and each fenced event from
-- these (store/history.go): the interpreter's time is the scarce one.
-- Code -2: dropped, the user was erased (meta field gone = erasure time,
-- see lua/forget_user.lua) at or after the event's time.
-- recs holds per event what it adds to the experiment counters (store/
-- experiment.go), '' for nothing, as decided now (applied events only);
-- attlog is the attribution log (entries offset|partition|rec) when an
-- event was fenced, so the processor answers a fenced event with the
-- decision its first application stored.
--
-- Attribution: impressions are applied under the same fence but carry no
-- weight and are not logged in KEYS[2]. The shown hash holds, per item
-- shown, ts|n|done|pos|via|variant|source: when it was shown (or the list
-- time, via l), the times shown since its last click, the attributed
-- kinds (bits 1 click, 2 add_to_cart, 4 purchase), its 1-based position;
-- ' t' the newest impression time and ' v:<variant>' the user's counters
-- in that variant, flags|n|x (flags 1 exposed, 2 clicked, 4 carted,
-- 8 bought; n items shown; x attributed clicks). Ids never hold spaces.
-- A click, cart or purchase of an item shown at most window ms before it
-- is attributed to that showing, once per kind; without an impression in
-- the window, to the user's current list when it holds the item and its
-- event_ts lies within the window before the event (via l).
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
local window = tonumber(ARGV[8])
local fallback = ARGV[9] == '1'
local shownCap = tonumber(ARGV[10])
local E = 11 -- first event argument

-- The weights of the batch's items, read once (ZMSCORE) and written once
-- (ZADD) instead of a ZSCORE and a ZINCRBY per event; sums as ZINCRBY's.
local witems = {}
do
  local seen = {}
  for k = 0, n - 1 do
    local b = E + k * 5
    local it = ARGV[b + 1]
    if tonumber(ARGV[b]) > fence and tonumber(ARGV[b + 3]) > gone and ARGV[b + 2] ~= 'impression' and not seen[it] then
      seen[it] = true
      witems[#witems + 1] = it
    end
  end
end
local weights = getScores(KEYS[1], witems)

-- Attribution state, read when first needed and written once at the end.
local KIND = {click = 1, add_to_cart = 2, purchase = 4}
local shown = {}    -- item -> record table (read or written by this call)
local shownW = {}   -- items whose record this call wrote, in order
local shownZ = {}   -- ZADD arguments for KEYS[5]
local ustats = {}   -- variant -> {f, n, x}
local ustatsW = {}
local newestImp = nil
local listIdx = nil
local recs = {}
local attPush = {}
local function getRec(it)
  local r = shown[it]
  if r == nil then
    r = false
    local raw = redis.call('HGET', KEYS[6], it)
    if raw then
      local ts, cnt, done, pos, via, rest = string.match(raw, '^(%d+)|(%d+)|(%d+)|(%d+)|(%a)|(.*)$')
      if ts then
        local v, src = string.match(rest, '^([^|]*)|(.*)$')
        r = {ts = tonumber(ts), n = tonumber(cnt), done = tonumber(done), pos = tonumber(pos), via = via, v = v, src = src}
      end
    end
    shown[it] = r
  end
  return r
end
local function setRec(it, r)
  if not r.w then
    r.w = true
    shownW[#shownW + 1] = it
  end
  shown[it] = r
end
local function userStat(v)
  local st = ustats[v]
  if st == nil then
    st = {f = 0, n = 0, x = 0}
    local raw = redis.call('HGET', KEYS[6], ' v:' .. v)
    if raw then
      local f, sn, sx = string.match(raw, '^(%d+)|(%d+)|(%d+)$')
      if f then st = {f = tonumber(f), n = tonumber(sn), x = tonumber(sx)} end
    end
    ustats[v] = st
    ustatsW[#ustatsW + 1] = v
  end
  return st
end
local function impNewest()
  if newestImp == nil then newestImp = tonumber(redis.call('HGET', KEYS[6], ' t') or '-1') end
  return newestImp
end
-- listRaw returns the user's current list (JSON), or false.
local listStr = nil
local function listRaw()
  if listStr == nil then listStr = redis.call('GET', KEYS[8]) or false end
  return listStr
end
-- listIndex returns the user's current list as {ets, variant, items =
-- item -> {pos, src}}, or false; it decodes the list once.
local function listIndex()
  if listIdx == nil then
    listIdx = false
    local raw = listRaw()
    if raw then
      local ok, l = pcall(cjson.decode, raw)
      if ok and type(l) == 'table' and type(l.items) == 'table' then
        local idx = {}
        for i, e in ipairs(l.items) do
          if type(e) == 'table' and type(e.item) == 'string' and idx[e.item] == nil then
            local src = e.source
            if type(src) ~= 'string' then src = '' end
            idx[e.item] = {pos = i, src = src}
          end
        end
        local v = l.variant
        if type(v) ~= 'string' then v = '' end
        local ets = tonumber(l.event_ts) or -1
        listIdx = {ets = ets, variant = v, items = idx}
      end
    end
  end
  return listIdx
end
local function split(str)
  local out = {}
  for part in string.gmatch(str .. '\n', '([^\n]*)\n') do out[#out + 1] = part end
  return out
end
-- impression applies an impression and returns its record.
local function impression(arg, ts)
  local parts = split(arg)
  local v = parts[1]
  local k = 0
  local met = {}
  for j = 2, #parts - 1, 2 do
    local src, it = parts[j], parts[j + 1]
    if not met[it] then
      met[it] = true
      k = k + 1
      local old = getRec(it)
      local cnt = 1
      if old then cnt = old.n + 1 end
      setRec(it, {ts = ts, n = cnt, done = 0, pos = j / 2, via = 'i', v = v, src = src, w = old and old.w})
      shownZ[#shownZ + 1] = ts
      shownZ[#shownZ + 1] = it
    end
  end
  if ts > impNewest() then newestImp = ts end
  local st = userStat(v)
  local first = 0
  if st.f % 2 == 0 then
    st.f = st.f + 1
    first = 1
  end
  local dn2 = 2 * st.n * k + k * k
  local dnx = k * st.x
  st.n = st.n + k
  return 'i|' .. v .. '|' .. first .. '|' .. string.format('%d', dn2) .. '|' .. string.format('%d', dnx)
end
-- attribute attributes an event of kind bit to the showing of item, if
-- any, and returns its record ('' when none).
local function attribute(item, typ, bit, ts)
  local r = getRec(item)
  local via = nil
  if r and r.ts <= ts and ts - r.ts <= window then
    if math.floor(r.done / bit) % 2 == 0 then via = r.via end
  elseif fallback and (impNewest() < 0 or ts - impNewest() > window) and listRaw() and
      (not string.find(item, '^[%w_%.:%-]+$') or string.find(listStr, '"item":"' .. item .. '"', 1, true)) then
    -- (a plain id that the list's JSON does not hold skips the decoding)
    local l = listIndex()
    local e = l and l.items[item]
    if e and l.ets >= 0 and l.ets <= ts and ts - l.ets <= window then
      r = {ts = l.ets, n = 0, done = 0, pos = e.pos, via = 'l', v = l.variant, src = e.src, w = r and r.w}
      shownZ[#shownZ + 1] = l.ets
      shownZ[#shownZ + 1] = item
      via = 'l'
    end
  end
  if not via then return '' end
  r.done = r.done + bit
  if bit == 1 then r.n = 0 end
  setRec(item, r)
  local first, dx2, dnx = 0, 0, 0
  if via == 'i' then
    local st = userStat(r.v)
    if bit == 1 then
      dx2 = 2 * st.x + 1
      dnx = st.n
      st.x = st.x + 1
    end
    local ub = bit * 2
    if math.floor(st.f / ub) % 2 == 0 then
      st.f = st.f + ub
      first = 1
    end
  end
  return 'a|' .. typ .. '|' .. r.v .. '|' .. via .. '|' .. r.src .. '|' .. r.pos .. '|' .. first .. '|' ..
    string.format('%d', dx2) .. '|' .. string.format('%d', dnx)
end

local codes = {}
local applied = 0
local lastts = 0
local newItems = 0
local fenced = false
local bought = false
local pending = {}
for k = 0, n - 1 do
  local b = E + k * 5
  local offStr = ARGV[b]
  local off = tonumber(offStr)
  local item = ARGV[b + 1]
  local typ = ARGV[b + 2]
  local ts = ARGV[b + 3]
  local w = ARGV[b + 4]
  local rec = ''
  if tonumber(ts) <= gone then
    codes[#codes + 1] = -2
  elseif off <= fence then
    codes[#codes + 1] = 0
    fenced = true
  elseif typ == 'impression' then
    if window > 0 then rec = impression(item, tonumber(ts)) end
    fence = off
    fenceStr = offStr
    applied = applied + 1
    codes[#codes + 1] = 1
  else
    if window > 0 and KIND[typ] then rec = attribute(item, typ, KIND[typ], tonumber(ts)) end
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
  recs[#recs + 1] = rec
  if rec ~= '' then attPush[#attPush + 1] = offStr .. '|' .. p .. '|' .. rec end
end
-- The log before this call's entries: an applied event's history scans at
-- most log_cap entries, this call's included, so the newest log_cap do.
local log = {}
if fenced then
  log = redis.call('LRANGE', KEYS[2], 0, -1)
elseif newItems > 0 or (applied > 0 and ARGV[E + 5 * n] == '1') then
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
      -- (a call of impressions only writes neither weights nor log)
      mask = redis.call('EXPIRE', KEYS[1], ttl) + 2 * redis.call('EXPIRE', KEYS[2], ttl) + 4 +
        8 * redis.call('EXPIRE', KEYS[4], ttl)
      fields[#fields + 1] = 'x'
      fields[#fields + 1] = string.format('%d', now)
      fields[#fields + 1] = 'k'
      fields[#fields + 1] = string.format('%d', mask)
      renewMeta = true
    else
      local add = 0
      if #pending > 0 and mask % 2 < 1 then
        redis.call('EXPIRE', KEYS[1], ttl)
        add = add + 1
      end
      if #pending > 0 and mask % 4 < 2 then
        redis.call('EXPIRE', KEYS[2], ttl)
        add = add + 2
      end
      if bought and mask % 16 < 8 then
        redis.call('EXPIRE', KEYS[4], ttl)
        add = add + 8
      end
      if add > 0 then
        fields[#fields + 1] = 'k'
        fields[#fields + 1] = string.format('%d', mask + add)
      end
    end
  end
  redis.call('HSET', KEYS[3], unpack(fields))
  if renewMeta then redis.call('EXPIRE', KEYS[3], ttl) end
end
-- The attribution state this call changed.
local attlog = {}
if fenced then attlog = redis.call('LRANGE', KEYS[7], 0, -1) end
if #shownW > 0 or #ustatsW > 0 then
  local hs = {}
  for _, it in ipairs(shownW) do
    local r = shown[it]
    hs[#hs + 1] = it
    hs[#hs + 1] = string.format('%d|%d|%d|%d|', r.ts, r.n, r.done, r.pos) .. r.via .. '|' .. r.v .. '|' .. r.src
  end
  for _, v in ipairs(ustatsW) do
    local st = ustats[v]
    hs[#hs + 1] = ' v:' .. v
    hs[#hs + 1] = string.format('%d|%d|%d', st.f, st.n, st.x)
  end
  if newestImp ~= nil and newestImp >= 0 then
    hs[#hs + 1] = ' t'
    hs[#hs + 1] = string.format('%d', newestImp)
  end
  for i = 1, #hs, 1000 do
    redis.call('HSET', KEYS[6], unpack(hs, i, math.min(i + 999, #hs)))
  end
  for i = 1, #shownZ, 1000 do
    redis.call('ZADD', KEYS[5], unpack(shownZ, i, math.min(i + 999, #shownZ)))
  end
  local card = redis.call('ZCARD', KEYS[5])
  if card > shownCap then
    local old = redis.call('ZRANGE', KEYS[5], 0, card - shownCap - 1)
    for i = 1, #old, 1000 do
      redis.call('HDEL', KEYS[6], unpack(old, i, math.min(i + 999, #old)))
    end
    redis.call('ZREMRANGEBYRANK', KEYS[5], 0, card - shownCap - 1)
  end
  if ttl > 0 then
    redis.call('EXPIRE', KEYS[5], ttl)
    redis.call('EXPIRE', KEYS[6], ttl)
  end
end
if #attPush > 0 then
  for i = 1, #attPush, 1000 do
    redis.call('LPUSH', KEYS[7], unpack(attPush, i, math.min(i + 999, #attPush)))
  end
  redis.call('LTRIM', KEYS[7], 0, 2 * logcap - 1)
  if ttl > 0 then redis.call('EXPIRE', KEYS[7], ttl) end
end
return {codes, log, recs, attlog}
