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
local okey = KEYS[1]
local now, oid, customer = clock(ARGV[1]), ARGV[2], ARGV[3]
local o = hmap(okey, {'state', 'customer', 'worker', 'rating'})
if not o.state or o.customer ~= customer then return refused('order_not_found') end
if not RATEABLE[o.state] or not o.worker then return refused('not_rateable') end
if o.rating then return refused('already_rated') end
local prefix = city_prefix(okey)
plan_order(okey)
want(prefix .. 'perf:' .. o.worker)
local need = needs()
if need then return need end
local stars, comment = tonumber(ARGV[4]), ARGV[5]
call('HSET', okey, 'rating', stars)
if comment ~= '' then call('HSET', okey, 'rcomment', comment) end
local data = {stars = stars}
if comment ~= '' then data.comment = comment end
emit(okey, oid, 'rated', o.state, now, {worker = o.worker, by = 'customer', actor = customer,
                                         data = data})
tally(prefix, o.worker, now, 'r', 'n', 1)
tally(prefix, o.worker, now, 'r', 's', stars)
return reply({ok = 1})
