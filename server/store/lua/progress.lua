-- The assigned worker reports the next service step of its job.
-- KEYS: order, worker.  ARGV: order id, worker id, event (arrive/start/complete), now.
-- Returns {1, order state, worker state} or {0, code}.
local okey, wkey = KEYS[1], KEYS[2]
local oid, wid, event, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local o = redis.call('HMGET', okey, 'state', 'worker')
if not o[1] or o[2] ~= wid then return {0, 'job_not_found'} end
if o[1] == 'cancelled' then return {0, 'order_cancelled'} end
local state = order_step(okey, oid, event, now, {worker = wid})
if not state then return {0, 'illegal_step'} end
if TERMINAL[state] then end_job(wkey, oid) end
return {1, state, redis.call('HGET', wkey, 'state')}
