--- @include "declared"
--- @include "want"
--- @include "split"
--- @include "online"
-- Plan a change to worker wid: its record, the city's indexes and event stream,
-- and the search index of each of its skills when it is connected.
local function plan_worker(prefix, wid)
  want(worker_key(prefix, wid))
  want(perf_key(prefix, wid))
  want(schedule_key(prefix, wid))
  want(online_key(prefix))
  want(seen_key(prefix))
  want(pos_key(prefix))
  want(stream_key(prefix))
  if DECLARED[online_key(prefix)] then
    local _, skills = online(prefix, wid)
    for _, skill in ipairs(split(skills)) do want(free_key(prefix, skill)) end
  end
end
