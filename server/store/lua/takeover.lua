-- A node died: every worker still routed to it in this city is disconnected
-- as by disconnect.lua (it leaves the search index; its jobs stay), and the
-- offers they held are withdrawn so that their orders are dispatched again at once.
-- KEYS: node set (workers of the dead node in this city).  ARGV: now, dead node.
-- Reply (TakeoverReply): how many workers were disconnected and offers withdrawn.
local members = KEYS[1]
local now, dead = clock(ARGV[1]), ARGV[2]
local prefix = city_prefix(members)
local workers, offers = 0, 0
for _, wid in ipairs(redis.call('SMEMBERS', members)) do
  local wkey = prefix .. 'w:' .. wid
  if redis.call('HGET', wkey, 'node') == dead then
    workers = workers + 1
    redis.call('HSET', wkey, 'node', '', 'sid', '')
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
