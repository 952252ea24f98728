-- The worker asks to be available, paused or offline.
-- KEYS: worker.  ARGV: now, worker id, event (go_available / pause / go_offline).
-- Reply (StatusReply): ok 1 with the new state, or ok 0 with a code.
local wkey, wid, event = KEYS[1], ARGV[2], ARGV[3]
local state = redis.call('HGET', wkey, 'state') or WORKER_INITIAL
if NEEDS_NO_JOBS[event] and #split(redis.call('HGET', wkey, 'jobs')) > 0 then
  return refused('active_job')
end
local nxt = worker_step(wkey, wid, event)
if not nxt then return refused(REFUSAL[state]) end  -- complete: tests/test_core_workers.py
return reply({ok = 1, state = nxt})
