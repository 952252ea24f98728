--- @include "call"
--- @include "settle_ttl"
--- @include "worker_step"
--- @include "load_of"
-- A worker's offer ends (rejected, expired, taken, cancelled, lost): back to
-- available, or on a job if a booked job that began meanwhile fills its capacity.
local function release(wkey, wid, offer_id)
  if call('HGET', wkey, W.offer) == offer_id then
    call('HDEL', wkey, W.offer, W.offer_frame, W.offer_distance)
    worker_step(wkey, wid, WORKER_EVENT.release)
    if load_of(wkey) >= tonumber(call('HGET', wkey, W.capacity) or '1') then
      worker_step(wkey, wid, WORKER_EVENT.take)
    end
    settle_ttl(wkey)
  end
end
