--- @include "plan_worker"
--- @include "plan_holders"
-- Plan a change to whoever has order o (state, holders, worker read from okey):
-- the holders of its open offer, or its worker.
local function plan_takers(okey, o)
  if OFFER_OPEN[o[O.state]] then
    plan_holders(okey)
  elseif o[O.worker] then
    plan_worker(city_prefix(okey), o[O.worker])
  end
end
