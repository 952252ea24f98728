-- A worker rejects an offer. The order goes back to dispatching when nobody
-- holds the offer any more (always, in sequential mode); in broadcast mode the
-- others keep it.
-- KEYS: order, timers, worker, tried, then the rest it plans (history, the city's
-- indexes, the search index of the worker's skills).
-- ARGV: now, order id, offer id, worker id, reason, lease ms.
-- Reply (RejectReply): ok 1 with the worker's state and redispatch 1 when the order
-- needs a new search now, or ok 0 with a code; or need.
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, oid, offer_id, wid, reason = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local refusal = offer_refusal(okey, tried, offer_id, wid, now)
if refusal then return refused(refusal) end
plan_order(okey)
plan_worker(city_prefix(okey), wid)
local need = needs()
if need then return need end
release(wkey, wid, offer_id)
tally_answer(okey, wid, now, 'j')
local holders = without(split(call('HGET', okey, 'holders')), wid)
local extra = {worker = wid, offer_id = offer_id, reason = reason}
if #holders > 0 then
  call('HSET', okey, 'holders', table.concat(holders, ','))
  order_step(okey, oid, 'decline', now, extra)
  return reply({ok = 1, worker_state = call('HGET', wkey, 'state'), redispatch = 0})
end
call('HDEL', okey, 'offer', 'holders', 'exp')
order_step(okey, oid, 'reject', now, extra)
call('ZADD', timers, now + tonumber(ARGV[6]), oid)
return reply({ok = 1, worker_state = call('HGET', wkey, 'state'), redispatch = 1})
