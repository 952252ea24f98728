--- @include "want"
-- Plan a change to an order: its record, history, tried set, the city's timers
-- and event stream.
local function plan_order(okey)
  local prefix = city_prefix(okey)
  for _, k in ipairs({okey, history_key(okey), tried_key(okey), timers_key(prefix),
                      stream_key(prefix)}) do
    want(k)
  end
end
