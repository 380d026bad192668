-- Helpers shared by the write scripts (prepended to item.lua and
-- trending.lua when they are loaded).

-- capSize trims zset key to its cap highest-scored members and returns its
-- size after that, given bound, at least its size (-1 when unknown): ZCARD
-- runs only when the bound is unknown or passes the cap.
local function capSize(key, bound, cap)
  if bound >= 0 and bound <= cap then return bound end
  local card = redis.call('ZCARD', key)
  if card > cap then
    redis.call('ZREMRANGEBYRANK', key, 0, card - cap - 1)
    return cap
  end
  return card
end


-- setScores sets the score of each member m of order in zset key to val[m],
-- with one ZADD per 1000 members.
local function setScores(key, order, val)
  for i = 1, #order, 1000 do
    local za = {}
    for k = i, math.min(i + 999, #order) do
      za[#za + 1] = string.format('%.17g', val[order[k]])
      za[#za + 1] = order[k]
    end
    redis.call('ZADD', key, unpack(za))
  end
end

-- getScores returns the scores (numbers, nil when absent) of the members of
-- order in zset key, as a table member -> score, with one ZMSCORE per 1000.
local function getScores(key, order)
  local res = {}
  for i = 1, #order, 1000 do
    local j = math.min(i + 999, #order)
    local cur = redis.call('ZMSCORE', key, unpack(order, i, j))
    for k = i, j do
      local v = cur[k - i + 1]
      if v then res[order[k]] = tonumber(v) end
    end
  end
  return res
end

-- addScores adds inc[m] to the score of each member m of order in zset key:
-- one ZMSCORE and one ZADD per 1000 members instead of a ZINCRBY each. The
-- sum is the one ZINCRBY would compute (old + increment, in doubles; %.17g
-- round-trips a double exactly).
local function addScores(key, order, inc)
  local cur = getScores(key, order)
  for _, m in ipairs(order) do cur[m] = (cur[m] or 0) + inc[m] end
  setScores(key, order, cur)
end
