-- A customer or an operator cancels an order. Workers holding its offer are told
-- it is withdrawn; an assigned worker is told its job is cancelled and is free again.
-- A customer may cancel only before the work started (CUSTOMER_CANCELS), an
-- operator whenever the order has not ended.
-- KEYS: order, timers, then the rest it plans (history, tried, the city's indexes,
-- and the holders or the assigned worker with their skills' search indexes).
-- ARGV: now, order id, by ('customer' or 'operator'), actor id, how many workflow
-- steps the caller saw done, the fee it decided from them (minor units), the currency
-- of the order's quote and what the worker earns of the fee ('reason=amount': prelude's
-- pay; '' for nothing).
-- Reply (StepReply): ok 1 with the order's state, or ok 0 with a code (stale: a step
-- was done since the caller read the order); or need.
local okey, timers = KEYS[1], KEYS[2]
local now, oid, by, actor = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local o = hmap(okey, {'state', 'customer', 'offer', 'holders', 'worker', 'wdone'})
if not o.state or (by == 'customer' and o.customer ~= actor) then
  return refused('order_not_found')
end
local row = ORDER_T[o.state]
if not (row and row['cancel']) or (by == 'customer' and not CUSTOMER_CANCELS[o.state]) then
  return refused('not_cancellable')
end
if #split(o.wdone) ~= tonumber(ARGV[5]) then return refused('stale') end
local reason = by == 'customer' and 'customer' or 'operator'
plan_order(okey)
plan_takers(okey, o)
local currency, earned = ARGV[7], pay_lines(ARGV[8])
if o.worker and #earned > 0 then plan_pay(city_prefix(okey), o.worker, now) end
local need = needs()
if need then return need end
take_from(okey, oid, o, reason)
call('ZREM', timers, oid)
call('HDEL', okey, 'wstep', 'wdue')
local fee = tonumber(ARGV[6])
local state = order_step(okey, oid, 'cancel', now, {
  reason = reason, worker = o.worker, by = by, actor = actor, fee = fee > 0 and fee or nil})
if o.worker and #earned > 0 then pay(okey, oid, o.worker, currency, earned, false, now) end
return reply({ok = 1, state = state})
