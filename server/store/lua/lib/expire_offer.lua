--- @include "call"
--- @include "split"
--- @include "hmap"
--- @include "withdraw"
--- @include "tally"
--- @include "order_step"
--- @include "release"
--- @include "holders_extra"
-- The offer of okey ends for every holder (expired) and the order goes back
-- to searching; each holder that still has it is told.
local function expire_offer(okey, oid, now)
  local o = hmap(okey, {O.offer, O.holders})
  local prefix = city_prefix(okey)
  local holders = split(o[O.holders])
  for _, wid in ipairs(holders) do
    local wkey = worker_key(prefix, wid)
    if call('HGET', wkey, W.offer) == o[O.offer] then
      release(wkey, wid, o[O.offer])
      withdraw(wkey, wid, oid, o[O.offer], 'expired')
      tally(prefix, wid, now, PERF_KIND.expired, PERF_FIGURE.count, 1)
    end
  end
  call('HDEL', okey, O.offer, O.holders, O.offer_expires)
  order_step(okey, oid, ORDER_EVENT.expire, now, holders_extra(holders, {offer_id = o[O.offer]}))
end
