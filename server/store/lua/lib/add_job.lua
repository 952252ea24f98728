--- @include "call"
--- @include "split"
--- @include "units_of"
--- @include "load_of"
-- A job of order okey (oid) becomes one of worker wkey's jobs, using its units of
-- the worker's capacity. Returns whether the worker still has room for more.
local function add_job(wkey, okey, oid)
  local jobs = split(call('HGET', wkey, W.jobs))
  jobs[#jobs + 1] = oid
  local load = load_of(wkey) + units_of(okey)
  call('HSET', wkey, W.jobs, table.concat(jobs, ','), W.load, load)
  return load < tonumber(call('HGET', wkey, W.capacity) or '1')
end
