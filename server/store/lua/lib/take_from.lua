--- @include "call"
--- @include "split"
--- @include "send_to"
--- @include "withdraw"
--- @include "release"
--- @include "end_job"
-- Take order o (state, offer, holders, worker) from whoever has it: its open offer
-- is withdrawn from each holder ('cancelled') and released, or its worker's job
-- ends, the worker told with job_cancelled and reason tell (nil: not told).
-- Returns the workers it was taken from.
local function take_from(okey, oid, o, tell)
  local prefix, from = city_prefix(okey), {}
  if OFFER_OPEN[o[O.state]] then
    for _, wid in ipairs(split(o[O.holders])) do
      local wkey = worker_key(prefix, wid)
      release(wkey, wid, o[O.offer])
      withdraw(wkey, wid, oid, o[O.offer], 'cancelled')
      from[#from + 1] = wid
    end
    call('HDEL', okey, O.offer, O.holders, O.offer_expires)
  elseif o[O.worker] then
    local wkey = worker_key(prefix, o[O.worker])
    end_job(wkey, o[O.worker], oid)
    if tell then
      send_to(wkey, o[O.worker], 'cancelled', oid,
              cjson.encode({type = 'job_cancelled', order_id = oid, reason = tell}))
    end
    from[1] = o[O.worker]
  end
  return from
end
