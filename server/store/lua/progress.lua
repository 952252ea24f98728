-- The assigned worker reports the next service step of its job.
-- KEYS: order, worker, then the rest it plans (history, tried, timers, the city's
-- indexes, the search index of the worker's skills).
-- ARGV: now, order id, worker id, event (arrive/start/complete).
-- Reply (ProgressReply): ok 1 with the order's and the worker's states, or ok 0 with a
-- code: job_not_found when the worker does not hold the job (never had it, or it
-- was cancelled), illegal_step when the step does not follow; or need.
local okey, wkey = KEYS[1], KEYS[2]
local now, oid, wid, event = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
if not contains(split(call('HGET', wkey, 'jobs')), oid)
   or call('HGET', okey, 'worker') ~= wid then
  return refused('job_not_found')
end
plan_order(okey)
plan_worker(city_prefix(okey), wid)
local need = needs()
if need then return need end
local state = order_step(okey, oid, event, now, {worker = wid})
if not state then return refused('illegal_step') end
if TERMINAL[state] then end_job(wkey, wid, oid) end
return reply({ok = 1, order_state = state, worker_state = call('HGET', wkey, 'state')})
