-- An operator moves the deadline an order is waiting on: while it looks for a
-- worker, its dispatch deadline (so it gives up later, and offers may last
-- longer); while a worker has it, the timer of its pending step (an approval,
-- a system step). An offer's own expiry is not moved: it ends, and the next
-- offer is made under the new deadline.
-- KEYS: order, timers, then the rest it plans (history, tried, the city's stream).
-- ARGV: now, order id, actor id, by how much (ms), the settings' max dispatch time
-- (ms) for an order by bare skill.
-- Reply (ExtendReply): ok 1 with the order's state and the new deadline, or ok 0
-- with a code (order_not_found, not_extendable: it ended, or no timer runs); or need.
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "plan_order"
--- @include "needs"
--- @include "order_step"
local okey, timers = KEYS[1], KEYS[2]
local now, oid, actor, by = clock(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local o = hmap(okey, {O.state, O.created, O.dispatch_from, O.max_dispatch_ms, O.step_due})
if not o[O.state] then return refused('order_not_found') end
local row = ORDER_T[o[O.state]]
if not (row and row[ORDER_EVENT.extend]) or (WORKING[o[O.state]] and not o[O.step_due]) then
  return refused('not_extendable')
end
plan_order(okey)
local need = needs()
if need then return need end
local due
if WORKING[o[O.state]] then
  due = tonumber(o[O.step_due]) + by
  call('HSET', okey, O.step_due, due)
  call('ZADD', timers, due, oid)
else
  local from = tonumber(o[O.dispatch_from] or o[O.created]) + by
  call('HSET', okey, O.dispatch_from, from)
  due = from + tonumber(o[O.max_dispatch_ms] or ARGV[5])
end
local state = order_step(okey, oid, ORDER_EVENT.extend, now,
                         {by = 'operator', actor = actor, due_at = due})
return reply({ok = 1, state = state, due = due})
