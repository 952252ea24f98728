--- @include "call"
--- @include "split"
--- @include "contains"
--- @include "hmap"
-- Why an accept or reject of offer_id by wid cannot proceed at now, or nil if it can.
local function offer_refusal(okey, tried, offer_id, wid, now)
  local o = hmap(okey, {O.state, O.offer, O.holders, O.worker, O.offer_expires})
  if not o[O.state] or call('SISMEMBER', tried, wid) == 0 then return 'offer_not_found' end
  if ANSWER_REFUSALS[o[O.state]] then return ANSWER_REFUSALS[o[O.state]] end
  if o[O.offer] ~= offer_id then
    if o[O.worker] and o[O.worker] ~= wid then return 'offer_taken' end
    return 'offer_expired'
  end
  if not contains(split(o[O.holders]), wid) or now >= tonumber(o[O.offer_expires]) then
    return 'offer_expired'
  end
  return nil
end
