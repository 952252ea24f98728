--- @include "call"
--- @include "split"
--- @include "without"
--- @include "order_step"
--- @include "release"
-- One holder of the open offer is gone without answering (its node died): it
-- loses the offer; the order is declined by it, or back to searching at once
-- when nobody else holds the offer.
local function lose_holder(okey, oid, wkey, wid, offer_id, now)
  release(wkey, wid, offer_id)
  if call('HGET', okey, O.offer) ~= offer_id then return end
  local holders = without(split(call('HGET', okey, O.holders)), wid)
  local extra = {worker = wid, offer_id = offer_id, reason = 'worker_lost'}
  if #holders > 0 then
    call('HSET', okey, O.holders, table.concat(holders, ','))
    order_step(okey, oid, ORDER_EVENT.decline, now, extra)
    return
  end
  call('HDEL', okey, O.offer, O.holders, O.offer_expires)
  extra.workers = {wid}
  order_step(okey, oid, ORDER_EVENT.expire, now, extra)
  call('ZADD', timers_key(city_prefix(okey)), now, oid)
end
