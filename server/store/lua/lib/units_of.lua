--- @include "call"
-- How much of a worker's capacity a job of this order uses (its category's
-- dispatch policy pinned it as 'units'; 1 for an order by bare skill).
local function units_of(okey)
  return tonumber(call('HGET', okey, O.units) or '1')
end
