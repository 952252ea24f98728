-- A search found nobody (or the order reached its deadline): retry at ARGV[4],
-- or give up when ARGV[4] is empty.
-- KEYS: order, timers, history, tried.  ARGV: now, order id, dv, retry at.
-- Reply (SettleReply): the order's state afterwards, or stale 1 if it changed meanwhile.
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "order_step"
local okey, timers = KEYS[1], KEYS[2]
local now, oid, dv, retry_at = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local o = hmap(okey, {O.state, O.dispatch_version})
if not (o[O.state] and SEARCHING[o[O.state]]) or o[O.dispatch_version] ~= dv then
  return reply({stale = 1})
end
if retry_at == '' then
  call('ZREM', timers, oid)
  return reply({state = order_step(okey, oid, ORDER_EVENT.give_up, now, {reason = 'no_worker'})})
end
call('ZADD', timers, retry_at, oid)
return reply({state = o[O.state]})
