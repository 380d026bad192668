-- Adds one partition's decayed event weights, summed per item by the
-- caller, to the global trending zset, fenced per source partition.
-- KEYS: 1 trending zset (item -> decayed weight), 2 fence hash (f:<partition>)
-- ARGV: 1 partition, 2 cap, 3 first offset, 4 last offset (of the
--       partition's events summed here), then item, weight pairs
-- As in item.lua, the sums apply whole or not at all: returns {1, 0}
-- applied, {0, 0} already applied, {2, fence} when the fence lies between
-- first and last (the caller sums again the events after it).
local fkey = 'f:' .. ARGV[1]
local fenceStr = redis.call('HGET', KEYS[2], fkey)
if fenceStr then
  local fence = tonumber(fenceStr)
  if fence >= tonumber(ARGV[4]) then return {0, 0} end
  if fence >= tonumber(ARGV[3]) then return {2, fence} end
end
local cap = tonumber(ARGV[2])
local add = {}
local order = {}
for k = 5, #ARGV, 2 do
  local it = ARGV[k]
  order[#order + 1] = it
  add[it] = tonumber(ARGV[k + 1])
end
addScores(KEYS[1], order, add)
redis.call('HSET', KEYS[2], fkey, ARGV[4])
local card = redis.call('ZCARD', KEYS[1])
if card > cap then redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - cap - 1) end
return {1, 0}
