-- Applies one partition's contributions to one item, fenced per source partition.
-- KEYS: 1 recent users zset (user -> ts), 2 co-occurrence zset (item -> decayed count),
--       3 meta hash (f:<partition> fences, n decayed distinct users, pop decayed weight)
-- ARGV: 1 partition, 2 item_users_cap, 3 cooc_cap, 4 ttl seconds, 5 count, then
--       7 per contribution (offsets ascending, at most one per offset):
--       offset, user ('' for a co-occurrence-only contribution), ts,
--       weight ('' for none), new ('1' when the event made the pair new),
--       decay factor, co-items joined by "\n" ('' for none)
-- With ttl > 0, users whose last interaction (event time) is older than ttl
-- before the newest applied one are removed from the recent users zset.
-- Returns the number of contributions applied.
local p = ARGV[1]
local fkey = 'f:' .. p
local fenceStr = redis.call('HGET', KEYS[3], fkey)
local fence = -1
if fenceStr then fence = tonumber(fenceStr) end
local ucap = tonumber(ARGV[2])
local ccap = tonumber(ARGV[3])
local ttl = tonumber(ARGV[4])
local n = tonumber(ARGV[5])
local applied = 0
local pop = 0
local deg = 0
local co = {}
local coOrder = {}
local maxts = 0
for k = 0, n - 1 do
  local b = 6 + k * 7
  local off = tonumber(ARGV[b])
  if off > fence then
    local user = ARGV[b + 1]
    if user ~= '' then
      redis.call('ZADD', KEYS[1], ARGV[b + 2], user)
      if tonumber(ARGV[b + 2]) > maxts then maxts = tonumber(ARGV[b + 2]) end
    end
    if ARGV[b + 3] ~= '' then pop = pop + tonumber(ARGV[b + 3]) end
    local d = tonumber(ARGV[b + 5])
    if ARGV[b + 4] == '1' then deg = deg + d end
    local cs = ARGV[b + 6]
    if cs ~= '' then
      for it in string.gmatch(cs, '[^\n]+') do
        if co[it] == nil then
          co[it] = 0
          coOrder[#coOrder + 1] = it
        end
        co[it] = co[it] + d
      end
    end
    fence = off
    fenceStr = ARGV[b]
    applied = applied + 1
  end
end
if applied > 0 then
  for _, it in ipairs(coOrder) do
    redis.call('ZINCRBY', KEYS[2], string.format('%.17g', co[it]), it)
  end
  redis.call('HSET', KEYS[3], fkey, fenceStr)
  if pop ~= 0 then redis.call('HINCRBYFLOAT', KEYS[3], 'pop', string.format('%.17g', pop)) end
  if deg ~= 0 then redis.call('HINCRBYFLOAT', KEYS[3], 'n', string.format('%.17g', deg)) end
  local card = redis.call('ZCARD', KEYS[1])
  if card > ucap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - ucap - 1) end
  card = redis.call('ZCARD', KEYS[2])
  if card > ccap then redis.call('ZREMRANGEBYRANK', KEYS[2], 0, card - ccap - 1) end
  if ttl > 0 then
    -- retention: users whose last interaction with this item is older
    -- than ttl (in event time) leave the recent-user index
    if maxts > 0 then
      redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', '(' .. string.format('%d', maxts - ttl * 1000))
    end
    for i = 1, 3 do redis.call('EXPIRE', KEYS[i], ttl) end
  end
end
return applied
