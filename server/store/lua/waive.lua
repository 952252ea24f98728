-- An operator waives a worker's hand-back of an order: it no longer counts
-- against the worker (its 'h:<day>:<order>' counter goes from 1 to 0, in the day
-- it was counted), recorded as a worker event 'waived' on the city's stream.
-- KEYS: the worker's performance counters, the worker, then the city's indexes.
-- ARGV: now, worker id, order id, operator id, reason ('' for none).
-- Reply (Refusable): ok 1, or ok 0 with not_waivable (no such hand-back counted
-- in the days kept, or waived already).
--- @include "call"
--- @include "clock"
--- @include "reply"
--- @include "refused"
--- @include "worker_event"
local perf, wkey = KEYS[1], KEYS[2]
local now, wid, oid = clock(ARGV[1]), ARGV[2], ARGV[3]
for _, field in ipairs(call('HKEYS', perf)) do
  local _, rest = string.match(field, '^' .. PERF_KIND.handed_back .. ':(%d+):(.*)$')
  if rest == oid and call('HGET', perf, field) == '1' then
    call('HSET', perf, field, 0)
    local extra = {by = 'operator', actor = ARGV[4], order_id = oid}
    if ARGV[5] ~= '' then extra.reason = ARGV[5] end
    worker_event(wkey, wid, WORKER_FACT.waived, now, extra)
    return reply({ok = 1})
  end
end
return refused('not_waivable')
