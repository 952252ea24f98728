-- A customer tips the worker of its completed order, once: the amount goes on the
-- order ('tip'), an event 'tipped' on its history and the city's stream, and to the
-- worker whole (prelude's pay: its ledger, the city's day book, an 'earned' event).
-- KEYS: order, timers, tried, history, stream, then the rest it plans (the worker's
-- ledger, record and counters, the day book).
-- ARGV: now, order id, customer id, amount (minor units of the order's quote).
-- Reply (Refusable): ok 1, or ok 0 with a code (order_not_found: not the customer's;
-- not_tippable: not completed, or without a price; already_tipped); or need.
local okey = KEYS[1]
local now, oid, customer, amount = clock(ARGV[1]), ARGV[2], ARGV[3], tonumber(ARGV[4])
local o = hmap(okey, {'state', 'customer', 'worker', 'tip', 'quote'})
if not o.state or o.customer ~= customer then return refused('order_not_found') end
if not RATEABLE[o.state] or not o.worker or not o.quote then return refused('not_tippable') end
if o.tip then return refused('already_tipped') end
plan_order(okey)
plan_pay(city_prefix(okey), o.worker, now)
local need = needs()
if need then return need end
call('HSET', okey, 'tip', amount)
emit(okey, oid, 'tipped', o.state, now, {worker = o.worker, by = 'customer', actor = customer,
                                          data = {amount = amount}})
pay(okey, oid, o.worker, cjson.decode(o.quote).currency, {{'tip', amount}}, false, now)
return reply({ok = 1})
