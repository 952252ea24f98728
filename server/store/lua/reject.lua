-- A worker rejects an offer. The order goes back to dispatching when nobody
-- holds the offer any more (always, in sequential mode); in broadcast mode the
-- others keep it.
-- KEYS: order, timers, worker, tried, then the rest it plans (history, the city's
-- indexes, the search index of the worker's skills).
-- ARGV: now, then opts (RejectArgs, server/store/arguments.py): order_id, offer_id,
-- worker_id, reason, lease_ms.
-- Reply (RejectReply): ok 1 with the worker's state and redispatch 1 when the order
-- needs a new search now, or ok 0 with a code; or need.
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "without"
--- @include "reply"
--- @include "refused"
--- @include "plan_worker"
--- @include "plan_order"
--- @include "needs"
--- @include "tally_answer"
--- @include "order_step"
--- @include "release"
--- @include "redispatch"
--- @include "offer_refusal"
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local oid, offer_id, wid, reason = opts.order_id, opts.offer_id, opts.worker_id, opts.reason
local refusal = offer_refusal(okey, tried, offer_id, wid, now)
if refusal then return refused(refusal) end
plan_order(okey)
plan_worker(city_prefix(okey), wid)
local need = needs()
if need then return need end
release(wkey, wid, offer_id)
tally_answer(okey, wid, now, PERF_KIND.rejected)
local holders = without(split(call('HGET', okey, O.holders)), wid)
local extra = {worker = wid, offer_id = offer_id, reason = reason}
if #holders > 0 then
  call('HSET', okey, O.holders, table.concat(holders, ','))
  order_step(okey, oid, ORDER_EVENT.decline, now, extra)
  return reply({ok = 1, worker_state = call('HGET', wkey, W.state), redispatch = 0})
end
call('HDEL', okey, O.offer, O.holders, O.offer_expires)
order_step(okey, oid, ORDER_EVENT.reject, now, extra)
call('ZADD', timers, now + opts.lease_ms, oid)
return reply({ok = 1, worker_state = call('HGET', wkey, W.state), redispatch = 1})
