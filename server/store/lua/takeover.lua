-- A node died: every worker still routed to it in this city is disconnected
-- (it leaves the search index; its jobs stay), and the offers they held are
-- withdrawn so that their orders are dispatched again at once.
-- KEYS: node set (workers of the dead node in this city), seen.  ARGV: now, dead node.
-- Reply (TakeoverReply): how many workers were disconnected and offers withdrawn.
local members, seen = KEYS[1], KEYS[2]
local now, dead = clock(ARGV[1]), ARGV[2]
local prefix = city_prefix(members)
local workers, offers = 0, 0
for _, wid in ipairs(redis.call('SMEMBERS', members)) do
  local wkey = prefix .. 'w:' .. wid
  if redis.call('HGET', wkey, 'node') == dead then
    workers = workers + 1
    redis.call('HSET', wkey, 'node', '', 'sid', '', 'live', '0')
    redis.call('ZREM', seen, wid)
    local offer_id = redis.call('HGET', wkey, 'offer')
    if offer_id then
      local oid = string.match(offer_id, '^(.*)/%d+$')
      lose_holder(prefix .. 'o:' .. oid, oid, wkey, wid, offer_id, now)
      offers = offers + 1
    end
    index_worker(wkey, wid)
  end
end
redis.call('DEL', members)
return reply({workers = workers, offers = offers})
