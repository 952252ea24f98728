--- @include "call"
--- @include "split"
--- @include "plan_worker"
-- Plan a change to the holders of okey's offer (read from the declared order).
local function plan_holders(okey)
  local prefix = city_prefix(okey)
  for _, wid in ipairs(split(call('HGET', okey, O.holders))) do plan_worker(prefix, wid) end
end
