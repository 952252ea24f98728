--- @include "call"
-- The workflow's first step is due from now: its timer starts when it has one
-- (wtms, pinned at creation for an approval or a system step); else the order
-- waits on no timer.
local function start_workflow(okey, timers, oid, now, wtms)
  local timer = tonumber(wtms or '')
  if timer then
    call('HSET', okey, O.step_due, now + timer)
    call('ZADD', timers, now + timer, oid)
  else
    call('ZREM', timers, oid)
  end
end
