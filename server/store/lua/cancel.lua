-- A customer or an operator cancels an order. Workers holding its offer are told
-- it is withdrawn; an assigned worker is told its job is cancelled and is free again.
-- A customer may cancel only before the work started (CUSTOMER_CANCELS), an
-- operator whenever the order has not ended.
-- KEYS: order, timers, then the rest it plans (history, tried, the city's indexes,
-- and the holders or the assigned worker with their skills' search indexes).
-- ARGV: now, then opts (CancelArgs, server/store/arguments.py): order_id, by
-- ('customer' or 'operator'), actor, done (how many workflow steps the caller saw
-- done), fee (what it decided from them, minor units), currency (the order's
-- quote's) and pay (what the worker earns of the fee, 'reason=amount': lib/pay.lua;
-- '' for nothing).
-- Reply (StepReply): ok 1 with the order's state, or ok 0 with a code (stale: a step
-- was done since the caller read the order); or need.
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "plan_order"
--- @include "plan_takers"
--- @include "needs"
--- @include "plan_pay"
--- @include "pay"
--- @include "pay_lines"
--- @include "order_step"
--- @include "take_from"
local okey, timers = KEYS[1], KEYS[2]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local oid, by, actor = opts.order_id, opts.by, opts.actor
local o = hmap(okey, {O.state, O.customer, O.offer, O.holders, O.worker, O.steps_done})
if not o[O.state] or (by == 'customer' and o[O.customer] ~= actor) then
  return refused('order_not_found')
end
local row = ORDER_T[o[O.state]]
if not (row and row[ORDER_EVENT.cancel])
   or (by == 'customer' and not CUSTOMER_CANCELS[o[O.state]]) then
  return refused('not_cancellable')
end
if #split(o[O.steps_done]) ~= opts.done then return refused('stale') end
local reason = by == 'customer' and 'customer' or 'operator'
plan_order(okey)
plan_takers(okey, o)
local currency, earned = opts.currency, pay_lines(opts.pay)
if o[O.worker] and #earned > 0 then plan_pay(city_prefix(okey), o[O.worker], now) end
local need = needs()
if need then return need end
take_from(okey, oid, o, reason)
call('ZREM', timers, oid)
call('HDEL', okey, O.step, O.step_due)
local fee = opts.fee
local state = order_step(okey, oid, ORDER_EVENT.cancel, now, {
  reason = reason, worker = o[O.worker], by = by, actor = actor, fee = fee > 0 and fee or nil})
if o[O.worker] and #earned > 0 then pay(okey, oid, o[O.worker], currency, earned, false, now) end
return reply({ok = 1, state = state})
