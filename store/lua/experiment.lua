-- Adds one partition's experiment counter increments, summed per field by
-- the caller, to the global experiment hash, fenced per source partition.
-- KEYS: 1 counters hash (field -> value), 2 fence hash (f:<partition>)
-- ARGV: 1 partition, 2 first offset, 3 last offset (of the partition's
--       events summed here), then field, increment pairs
-- As in trending.lua, the sums apply whole or not at all: returns {1, 0}
-- applied, {0, 0} already applied, {2, fence} when the fence lies between
-- first and last (the caller sums again the events after it).
local fkey = 'f:' .. ARGV[1]
local fenceStr = redis.call('HGET', KEYS[2], fkey)
if fenceStr then
  local fence = tonumber(fenceStr)
  if fence >= tonumber(ARGV[3]) then return {0, 0} end
  if fence >= tonumber(ARGV[2]) then return {2, fence} end
end
for k = 4, #ARGV, 2 do
  redis.call('HINCRBYFLOAT', KEYS[1], ARGV[k], ARGV[k + 1])
end
redis.call('HSET', KEYS[2], fkey, ARGV[3])
return {1, 0}
