-- The worker asks to be available, paused or offline.
-- KEYS: worker.  ARGV: event (go_available / pause / go_offline).
-- Returns {1, state} or {0, code}.
local wkey, event = KEYS[1], ARGV[1]
local state = redis.call('HGET', wkey, 'state') or 'offline'
if NEEDS_NO_JOBS[event] and #split(redis.call('HGET', wkey, 'jobs')) > 0 then
  return {0, 'active_job'}
end
local nxt = worker_step(wkey, event)
if not nxt then return {0, REFUSAL[state] or 'illegal_transition'} end
return {1, nxt}
