-- Forget the positions of workers not seen for longer than ARGV[2] ms (at most
-- ARGV[3] of them) and take them out of the search index, so the nearest-N
-- search does not fill up with workers that stopped reporting (search already
-- skips them; this keeps it fast) and no position outlives its worker. A
-- forgotten worker comes back with its next location report.
-- KEYS: seen.  ARGV: now, max age ms, limit.
-- Reply (CountReply): how many were forgotten.
local seen = KEYS[1]
local now = clock(ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - tonumber(ARGV[2])),
                         'LIMIT', 0, ARGV[3])
local prefix = city_prefix(seen)
for _, wid in ipairs(stale) do
  forget_position(prefix, wid)
  local wkey = prefix .. 'w:' .. wid
  if redis.call('EXISTS', wkey) == 1 then index_worker(wkey, wid) end
end
return reply({count = #stale})
