-- A node died: every worker still routed to it in this city is disconnected
-- as by disconnect.lua (it leaves the search index; its jobs stay), and the
-- offers they held are withdrawn so that their orders are dispatched again at once.
-- KEYS: node set (workers of the dead node in this city), then the rest it plans
-- (the city's indexes and timers, each worker's record and the search index of its
-- skills, the order of each offer one holds: two rounds, as the offer is read
-- from the worker's record).  ARGV: now, dead node.
-- Reply (TakeoverReply): how many workers were disconnected and offers withdrawn; or need.
local members = KEYS[1]
local now, dead = clock(ARGV[1]), ARGV[2]
local prefix = city_prefix(members)
local wids = call('SMEMBERS', members)
want(prefix .. 'timers')
for _, wid in ipairs(wids) do
  plan_worker(prefix, wid)
  local wkey = prefix .. 'w:' .. wid
  if DECLARED[wkey] then
    local offer_id = call('HGET', wkey, 'offer')
    if offer_id then plan_order(prefix .. 'o:' .. string.match(offer_id, '^(.*)/%d+$')) end
  end
end
local need = needs()
if need then return need end
local workers, offers = 0, 0
for _, wid in ipairs(wids) do
  local wkey = prefix .. 'w:' .. wid
  if call('HGET', wkey, 'node') == dead then
    workers = workers + 1
    local _, skills = online(prefix, wid)
    leave_search(prefix, wid, split(skills))
    call('HSET', wkey, 'node', '', 'sid', '')
    call('HDEL', prefix .. 'online', wid)
    local offer_id = call('HGET', wkey, 'offer')
    if offer_id then
      local oid = string.match(offer_id, '^(.*)/%d+$')
      lose_holder(prefix .. 'o:' .. oid, oid, wkey, wid, offer_id, now)
      offers = offers + 1
    end
    settle_ttl(wkey)
    worker_event(wkey, wid, 'disconnected', now, {node = dead, reason = 'node_lost'})
  end
end
call('DEL', members)
return reply({workers = workers, offers = offers})
