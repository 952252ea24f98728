--- @include "send_to"
local function withdraw(wkey, wid, oid, offer_id, reason)
  send_to(wkey, wid, 'withdrawn', oid, cjson.encode({
    type = 'offer_withdrawn', offer_id = offer_id, order_id = oid, reason = reason}))
end
