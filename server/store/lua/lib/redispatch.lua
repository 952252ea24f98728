--- @include "call"
--- @include "order_step"
--- @include "take_from"
-- Take order o (state, offer, holders, worker) from whoever has it (told with
-- reason tell, nil: not told) and dispatch it again from now: none of them is ever
-- offered it again (its tried set), its workflow starts over at step first ('' for
-- an order by bare skill) and a booking begins anew with its next worker; recorded
-- 'reassigned' with extra (by, actor, reason) and the workers it was taken from,
-- and due again after lease ms. Returns the order's state and those workers.
local function redispatch(okey, oid, o, tell, first, lease, now, extra)
  local from = take_from(okey, oid, o, tell)
  for _, wid in ipairs(from) do call('SADD', tried_key(okey), wid) end
  call('HDEL', okey, O.worker, O.step_due, O.steps_done, O.booking_due, O.booking_begun)
  if first ~= '' then call('HSET', okey, O.step, first) else call('HDEL', okey, O.step) end
  call('HSET', okey, O.dispatch_from, now)
  extra.workers = from
  local state = order_step(okey, oid, ORDER_EVENT.reassign, now, extra)
  call('ZADD', timers_key(city_prefix(okey)), now + lease, oid)
  return state, from
end
