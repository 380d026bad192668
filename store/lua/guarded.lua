-- Writes one key group's changes, computed by the process that owns the
-- group (store/guarded.go), only if the group's meta hash still holds the
-- guard fields as that process last read or wrote them: a compare-and-set
-- on the fences, so that a write from an owner that lost the group (a
-- zombie) or from a stale copy changes nothing.
-- KEYS: 1 the meta hash, then the keys the commands write
-- ARGV: 1 g, then g field names, then g expected values ('' = absent),
--       then commands: name, key index (into KEYS), argument count,
--       arguments (the caller keeps each command under 1,000 arguments)
-- Returns {1} written, or {0, v1, ..., vg}: the guard fields as they are
-- ('' for absent), and writes nothing.
local g = tonumber(ARGV[1])
if g > 0 then
  local cur = redis.call('HMGET', KEYS[1], unpack(ARGV, 2, 1 + g))
  local stale = false
  for i = 1, g do
    cur[i] = cur[i] or ''
    if cur[i] ~= ARGV[1 + g + i] then stale = true end
  end
  if stale then
    local out = {0}
    for i = 1, g do out[#out + 1] = cur[i] end
    return out
  end
end
local i = 2 + 2 * g
while i <= #ARGV do
  local n = tonumber(ARGV[i + 2])
  redis.call(ARGV[i], KEYS[tonumber(ARGV[i + 1])], unpack(ARGV, i + 3, i + 2 + n))
  i = i + 3 + n
end
return {1}
