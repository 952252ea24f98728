-- Store the latest positions of workers connected to this node. "Last seen"
-- is now (Redis time: when the server stored the report); the phone's own
-- time is kept as data. A report for a worker no longer routed to this node
-- (it disconnected, or connected elsewhere) is dropped: a late write never
-- brings a departed worker back.
-- KEYS: seen.  ARGV: now, node, then worker id, lng, lat, phone time for each worker.
-- Reply (CountReply): how many positions were stored.
local seen = KEYS[1]
local now, node = clock(ARGV[1]), ARGV[2]
local prefix = city_prefix(seen)
local count = 0
for i = 3, #ARGV, 4 do
  local wid, lng, lat = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  local wkey = prefix .. 'w:' .. wid
  local w = hmap(wkey, {'node', 'state', 'skills'})
  if w.node == node then
    redis.call('HSET', wkey, 'lng', lng, 'lat', lat, 'seen', now, 'at', ARGV[i + 3], 'live', '1')
    redis.call('ZADD', seen, now, wid)
    if CANDIDATE[w.state or WORKER_INITIAL] then
      for _, skill in ipairs(split(w.skills)) do
        redis.call('GEOADD', prefix .. 'free:' .. skill, lng, lat, wid)
      end
    end
    count = count + 1
  end
end
return reply({count = count})
