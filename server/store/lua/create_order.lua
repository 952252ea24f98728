-- Create an order and start dispatching it, unless it exists already; an order
-- booked for later (its 'dat': when its dispatch begins) waits created till then
-- (tick.lua begins it).
-- KEYS: order, timers, history, tried.
-- ARGV: now, order id, lease ms, retention ms, then field/value pairs.
-- Reply (CreateReply): created 1 with the creation time and the events (as JSON),
-- or created 0 if the order was there already (an idempotent retry).
--- @include "call"
--- @include "clock"
--- @include "reply"
--- @include "emit"
--- @include "order_step"
local okey, timers = KEYS[1], KEYS[2]
local now, oid = clock(ARGV[1]), ARGV[2]
if call('EXISTS', okey) == 1 then return reply({created = 0}) end
local fields = {}
for i = 5, #ARGV do fields[#fields + 1] = ARGV[i] end
call('HSET', okey, O.state, ORDER_INITIAL, O.dispatch_version, 0, O.created, now,
     O.keep_ms, ARGV[4],
           unpack(fields))
emit(okey, oid, CREATED_EVENT, ORDER_INITIAL, now, nil)
local at = tonumber(call('HGET', okey, O.dispatch_at) or '')
if at and at > now then
  call('ZADD', timers, at, oid)
else
  order_step(okey, oid, ORDER_EVENT.dispatch, now, nil)
  call('ZADD', timers, now + tonumber(ARGV[3]), oid)
end
return reply({created = 1, now = now, events = call('LRANGE', history_key(okey), 0, -1)})
