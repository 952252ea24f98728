-- The worker asks to be available, paused or offline.
-- KEYS: worker, then the rest it plans (the city's indexes, the search index of
-- the worker's skills).  ARGV: now, worker id, event (go_available / pause / go_offline).
-- Reply (StatusReply): ok 1 with the new state, or ok 0 with a code; or need.
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "reply"
--- @include "refused"
--- @include "plan_worker"
--- @include "needs"
--- @include "worker_event"
--- @include "worker_step"
local wkey, now, wid, event = KEYS[1], clock(ARGV[1]), ARGV[2], ARGV[3]
plan_worker(city_prefix(wkey), wid)
local need = needs()
if need then return need end
local state = call('HGET', wkey, W.state) or WORKER_INITIAL
if NEEDS_NO_JOBS[event] and #split(call('HGET', wkey, W.jobs)) > 0 then
  return refused('active_job')
end
local nxt = worker_step(wkey, wid, event)
if not nxt then return refused(REFUSAL[state]) end  -- complete: tests/core/test_worker_states.py
if nxt ~= state then worker_event(wkey, wid, WORKER_FACT.status, now, nil) end
return reply({ok = 1, state = nxt})
