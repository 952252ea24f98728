-- A customer tips the worker of its completed order, once: the amount goes on the
-- order ('tip'), an event 'tipped' on its history and the city's stream, and to the
-- worker whole (lib/pay.lua: its ledger, the city's day book, an 'earned' event).
-- KEYS: order, timers, tried, history, stream, then the rest it plans (the worker's
-- ledger, record and counters, the day book).
-- ARGV: now, order id, customer id, amount (minor units of the order's quote).
-- Reply (Refusable): ok 1, or ok 0 with a code (order_not_found: not the customer's;
-- not_tippable: not completed, or without a price; already_tipped); or need.
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "plan_order"
--- @include "needs"
--- @include "plan_pay"
--- @include "pay"
--- @include "emit"
local okey = KEYS[1]
local now, oid, customer, amount = clock(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local o = hmap(okey, {O.state, O.customer, O.worker, O.tip, O.quote})
if not o[O.state] or o[O.customer] ~= customer then return refused('order_not_found') end
if not RATEABLE[o[O.state]] or not o[O.worker] or not o[O.quote] then
  return refused('not_tippable')
end
if o[O.tip] then return refused('already_tipped') end
plan_order(okey)
plan_pay(city_prefix(okey), o[O.worker], now)
local need = needs()
if need then return need end
call('HSET', okey, O.tip, amount)
emit(okey, oid, ORDER_FACT.tipped, o[O.state], now,
     {worker = o[O.worker], by = 'customer', actor = customer, data = {amount = amount}})
pay(okey, oid, o[O.worker], cjson.decode(o[O.quote]).currency, {{TIP_PAY, amount}}, false, now)
return reply({ok = 1})
