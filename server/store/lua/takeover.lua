-- A node died: every worker still routed to it in this city is disconnected
-- as by disconnect.lua (it leaves the search index; its jobs stay), and the
-- offers they held are withdrawn so that their orders are dispatched again at once.
-- KEYS: node set (workers of the dead node in this city), then the rest it plans
-- (the city's indexes and timers, each worker's record and the search index of its
-- skills, the order of each offer one holds: two rounds, as the offer is read
-- from the worker's record).  ARGV: now, dead node.
-- Reply (TakeoverReply): how many workers were disconnected and offers withdrawn; or need.
--- @include "declared"
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "split"
--- @include "reply"
--- @include "leave_search"
--- @include "online"
--- @include "plan_worker"
--- @include "plan_order"
--- @include "needs"
--- @include "settle_ttl"
--- @include "worker_event"
--- @include "lose_holder"
local members = KEYS[1]
local now, dead = clock(ARGV[1]), ARGV[2]
local prefix = city_prefix(members)
local wids = call('SMEMBERS', members)
want(timers_key(prefix))
for _, wid in ipairs(wids) do
  plan_worker(prefix, wid)
  local wkey = worker_key(prefix, wid)
  if DECLARED[wkey] then
    local offer_id = call('HGET', wkey, W.offer)
    if offer_id then plan_order(order_key(prefix, string.match(offer_id, '^(.*)/%d+$'))) end
  end
end
local need = needs()
if need then return need end
local workers, offers = 0, 0
for _, wid in ipairs(wids) do
  local wkey = worker_key(prefix, wid)
  if call('HGET', wkey, W.node) == dead then
    workers = workers + 1
    local _, skills = online(prefix, wid)
    leave_search(prefix, wid, split(skills))
    call('HSET', wkey, W.node, '', W.session, '')
    call('HDEL', online_key(prefix), wid)
    local offer_id = call('HGET', wkey, W.offer)
    if offer_id then
      local oid = string.match(offer_id, '^(.*)/%d+$')
      lose_holder(order_key(prefix, oid), oid, wkey, wid, offer_id, now)
      offers = offers + 1
    end
    settle_ttl(wkey)
    worker_event(wkey, wid, WORKER_FACT.disconnected, now, {node = dead, reason = 'node_lost'})
  end
end
call('DEL', members)
return reply({workers = workers, offers = offers})
