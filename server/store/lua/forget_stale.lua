-- Take workers not seen for longer than ARGV[2] ms out of the search index (at
-- most ARGV[3] of them), so the nearest-N search does not fill up with workers
-- that stopped reporting. Search already skips them; this keeps it fast. A
-- forgotten worker comes back with its next location report.
-- KEYS: seen.  ARGV: now, max age ms, limit.
-- Reply (CountReply): how many were forgotten.
local seen = KEYS[1]
local now = clock(ARGV[1])
local stale = redis.call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - tonumber(ARGV[2])),
                         'LIMIT', 0, ARGV[3])
local prefix = city_prefix(seen)
for _, wid in ipairs(stale) do
  redis.call('ZREM', seen, wid)
  local wkey = prefix .. 'w:' .. wid
  if redis.call('EXISTS', wkey) == 1 then
    redis.call('HSET', wkey, 'live', '0')
    index_worker(wkey, wid)
  end
end
return reply({count = #stale})
