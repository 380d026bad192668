-- Adds one partition's decayed event weights to the global trending zset,
-- fenced per source partition.
-- KEYS: 1 trending zset (item -> decayed weight), 2 fence hash (f:<partition>)
-- ARGV: 1 partition, 2 cap, 3 count, then 3 per event (offsets ascending):
--       offset, item, weight
-- Returns the number of events applied.
local fkey = 'f:' .. ARGV[1]
local fenceStr = redis.call('HGET', KEYS[2], fkey)
local fence = -1
if fenceStr then fence = tonumber(fenceStr) end
local cap = tonumber(ARGV[2])
local n = tonumber(ARGV[3])
local add = {}
local order = {}
local applied = 0
for k = 0, n - 1 do
  local b = 4 + k * 3
  if tonumber(ARGV[b]) > fence then
    local it = ARGV[b + 1]
    if add[it] == nil then
      add[it] = 0
      order[#order + 1] = it
    end
    add[it] = add[it] + tonumber(ARGV[b + 2])
    fence = tonumber(ARGV[b])
    fenceStr = ARGV[b]
    applied = applied + 1
  end
end
if applied > 0 then
  addScores(KEYS[1], order, add)
  redis.call('HSET', KEYS[2], fkey, fenceStr)
  local card = redis.call('ZCARD', KEYS[1])
  if card > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - cap - 1) end
end
return applied
