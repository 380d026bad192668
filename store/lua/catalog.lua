-- Stores one item's catalog attributes, fenced per source partition of the
-- items topic.
-- KEYS: 1 attribute hash {i:<id>}:attr (fields cat, brand, price, tags, av,
--       ca, and f:<partition> fences)
-- ARGV: 1 partition, 2 offset, then field, value pairs
-- Returns {applied (1 or 0), previous av ('' when the item was unknown)}.
local fkey = 'f:' .. ARGV[1]
local fence = tonumber(redis.call('HGET', KEYS[1], fkey) or '-1')
local prev = redis.call('HGET', KEYS[1], 'av') or ''
if tonumber(ARGV[2]) <= fence then
  return {0, prev}
end
local args = {fkey, ARGV[2]}
for i = 3, #ARGV do args[#args + 1] = ARGV[i] end
redis.call('HSET', KEYS[1], unpack(args))
return {1, prev}
