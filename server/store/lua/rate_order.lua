-- A customer rates its completed order, once: the stars (and comment) go on the
-- order, an event 'rated' on its history and the city's stream, and the stars
-- into its worker's performance counters (one field per day; days older than
-- the longest window go in the same step, and the counters expire a window after
-- their last write).
-- KEYS: order, timers, tried, history, stream, then the rest it plans (the
-- worker's performance counters).
-- ARGV: now, order id, customer id, stars, comment ('' for none).
-- Reply (Refusable): ok 1, or ok 0 with a code (order_not_found: not the
-- customer's; not_rateable: not completed; already_rated); or need.
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "plan_order"
--- @include "needs"
--- @include "tally"
--- @include "emit"
local okey = KEYS[1]
local now, oid, customer = clock(ARGV[1]), ARGV[2], ARGV[3]
local o = hmap(okey, {O.state, O.customer, O.worker, O.rating})
if not o[O.state] or o[O.customer] ~= customer then return refused('order_not_found') end
if not RATEABLE[o[O.state]] or not o[O.worker] then return refused('not_rateable') end
if o[O.rating] then return refused('already_rated') end
local prefix = city_prefix(okey)
plan_order(okey)
want(perf_key(prefix, o[O.worker]))
local need = needs()
if need then return need end
local stars, comment = tonumber(ARGV[4]), ARGV[5]
call('HSET', okey, O.rating, stars)
if comment ~= '' then call('HSET', okey, O.rating_comment, comment) end
local data = {stars = stars}
if comment ~= '' then data.comment = comment end
emit(okey, oid, ORDER_FACT.rated, o[O.state], now,
     {worker = o[O.worker], by = 'customer', actor = customer, data = data})
tally(prefix, o[O.worker], now, PERF_KIND.rated, PERF_FIGURE.count, 1)
tally(prefix, o[O.worker], now, PERF_KIND.rated, PERF_FIGURE.stars, stars)
return reply({ok = 1})
