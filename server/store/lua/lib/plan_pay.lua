--- @include "want"
-- Plan paying worker wid at now (pay): its ledger, the city's day book of now's
-- day, its record and counters, and the city's event stream.
local function plan_pay(prefix, wid, now)
  for _, key in ipairs({ledger_key(prefix, wid), book_key(prefix, math.floor(now / 86400000)),
                        perf_key(prefix, wid), worker_key(prefix, wid), stream_key(prefix)}) do
    want(key)
  end
end
