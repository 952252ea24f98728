-- A worker rejects an offer. The order goes back to dispatching when nobody
-- holds the offer any more (always, in sequential mode); in broadcast mode the
-- others keep it.
-- KEYS: order, timers, worker, tried.  ARGV: order id, offer id, worker id, now, reason, lease until.
-- Returns {1, worker state, 'redispatch' | 'open'} or {0, code}.
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local oid, offer_id, wid, now, reason = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local refusal = offer_refusal(okey, tried, offer_id, wid)
if refusal then return {0, refusal} end
release(wkey, offer_id)
local holders = without(split(redis.call('HGET', okey, 'holders')), wid)
local extra = {worker = wid, offer_id = offer_id, reason = reason}
if #holders > 0 then
  redis.call('HSET', okey, 'holders', table.concat(holders, ','))
  order_step(okey, oid, 'decline', now, extra)
  return {1, redis.call('HGET', wkey, 'state'), 'open'}
end
redis.call('HDEL', okey, 'offer', 'holders', 'exp')
order_step(okey, oid, 'reject', now, extra)
redis.call('ZADD', timers, ARGV[6], oid)
return {1, redis.call('HGET', wkey, 'state'), 'redispatch'}
