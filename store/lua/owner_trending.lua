-- Sets the trending weight of items written by their item owner
-- (store/itemowner.go): each item's popularity, tagged with the version
-- of the item write it comes from. A write older than the one the zset
-- holds (a zombie owner's, sent late) changes nothing, so trending follows
-- the item writes in their order whoever sends them.
-- KEYS: 1 trending zset (item -> decayed weight), 2 versions hash
--       (item -> version of the write its weight comes from)
-- ARGV: 1 cap, then item, version, weight triples (at most 999 items)
-- Items trimmed by the cap lose their version too.
-- Returns the number of items set.
local cap = tonumber(ARGV[1])
local items = {}
for i = 2, #ARGV, 3 do items[#items + 1] = ARGV[i] end
if #items == 0 then return 0 end
local cur = redis.call('HMGET', KEYS[2], unpack(items))
local za, hv = {}, {}
for k = 1, #items do
  local i = 2 + 3 * (k - 1)
  local v = tonumber(ARGV[i + 1])
  if not cur[k] or tonumber(cur[k]) < v then
    za[#za + 1] = ARGV[i + 2]
    za[#za + 1] = ARGV[i]
    hv[#hv + 1] = ARGV[i]
    hv[#hv + 1] = ARGV[i + 1]
  end
end
if #za == 0 then return 0 end
redis.call('ZADD', KEYS[1], unpack(za))
redis.call('HSET', KEYS[2], unpack(hv))
local card = redis.call('ZCARD', KEYS[1])
if card > cap then
  local gone = redis.call('ZRANGE', KEYS[1], 0, card - cap - 1)
  redis.call('ZREMRANGEBYRANK', KEYS[1], 0, card - cap - 1)
  redis.call('HDEL', KEYS[2], unpack(gone))
end
return #hv / 2
