-- A search found nobody: retry at ARGV[4], or give up when ARGV[4] is empty.
-- KEYS: order, timers.  ARGV: order id, dv, now, retry at.
-- Returns the order's state afterwards, or 'stale' if it changed meanwhile.
local okey, timers = KEYS[1], KEYS[2]
local oid, dv, now, retry_at = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local o = redis.call('HMGET', okey, 'state', 'dv')
if o[1] ~= 'dispatching' or o[2] ~= dv then return 'stale' end
if retry_at == '' then
  redis.call('ZREM', timers, oid)
  return order_step(okey, oid, 'give_up', now, {reason = 'no_worker'})
end
redis.call('ZADD', timers, retry_at, oid)
return o[1]
