--- @include "call"
--- @include "split"
--- @include "contains"
--- @include "without"
--- @include "settle_ttl"
--- @include "worker_step"
--- @include "units_of"
--- @include "load_of"
-- A worker's job ends (completed, cancelled, taken back): it has room again. A
-- booked job that has not begun leaves the worker's schedule only.
-- The order's record (d:{city}:o:<order>) is declared by every caller.
local function end_job(wkey, wid, oid)
  local prefix = city_prefix(wkey)
  local okey = order_key(prefix, oid)
  if call('HGET', okey, O.slot_start) then call('HDEL', schedule_key(prefix, wid), oid) end
  local jobs = split(call('HGET', wkey, W.jobs))
  if not contains(jobs, oid) then return end
  jobs = without(jobs, oid)
  local load = math.max(0, load_of(wkey) - units_of(okey))
  call('HSET', wkey, W.jobs, table.concat(jobs, ','), W.load, #jobs > 0 and load or 0)
  worker_step(wkey, wid, WORKER_EVENT.free)
  settle_ttl(wkey)
end
