-- Create an order and start dispatching it, unless it exists already.
-- KEYS: order, timers.  ARGV: order id, now, lease until, then field/value pairs.
-- Returns the new order's events (id, field/value list) as XRANGE does, or 0 if
-- the order was there already (an idempotent retry).
local okey, timers = KEYS[1], KEYS[2]
local oid, now, lease = ARGV[1], ARGV[2], ARGV[3]
if redis.call('EXISTS', okey) == 1 then return 0 end
local fields = {}
for i = 4, #ARGV do fields[#fields + 1] = ARGV[i] end
redis.call('HSET', okey, 'state', 'created', 'dv', 0, unpack(fields))
emit(okey, oid, CREATED_EVENT, 'created', now, nil)
order_step(okey, oid, 'dispatch', now, nil)
redis.call('ZADD', timers, lease, oid)
return redis.call('XRANGE', okey .. ':ev', '-', '+')
