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
local okey, timers = KEYS[1], KEYS[2]
local now, oid, actor, by = clock(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local o = hmap(okey, {'state', 'created', 'dfrom', 'maxms', 'wdue'})
if not o.state then return refused('order_not_found') end
local row = ORDER_T[o.state]
if not (row and row['extend']) or (WORKING[o.state] and not o.wdue) then
  return refused('not_extendable')
end
plan_order(okey)
local need = needs()
if need then return need end
local due
if WORKING[o.state] then
  due = tonumber(o.wdue) + by
  call('HSET', okey, 'wdue', due)
  call('ZADD', timers, due, oid)
else
  local from = tonumber(o.dfrom or o.created) + by
  call('HSET', okey, 'dfrom', from)
  due = from + tonumber(o.maxms or ARGV[5])
end
local state = order_step(okey, oid, 'extend', now, {by = 'operator', actor = actor, due_at = due})
return reply({ok = 1, state = state, due = due})
