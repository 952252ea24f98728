-- The assigned worker reports the next service step of its job.
-- KEYS: order, worker.  ARGV: now, order id, worker id, event (arrive/start/complete).
-- Reply (ProgressReply): ok 1 with the order's and the worker's states, or ok 0 with a
-- code: job_not_found when the worker does not hold the job (never had it, or it
-- was cancelled), illegal_step when the step does not follow.
local okey, wkey = KEYS[1], KEYS[2]
local now, oid, wid, event = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
if not contains(split(redis.call('HGET', wkey, 'jobs')), oid)
   or redis.call('HGET', okey, 'worker') ~= wid then
  return refused('job_not_found')
end
local state = order_step(okey, oid, event, now, {worker = wid})
if not state then return refused('illegal_step') end
if TERMINAL[state] then end_job(wkey, wid, oid) end
return reply({ok = 1, order_state = state, worker_state = redis.call('HGET', wkey, 'state')})
