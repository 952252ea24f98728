-- A booked job's time to begin came ('bdue', its category's reminder time before
-- its slot). When its worker is there (connected, neither offline nor paused) the
-- job leaves its schedule and becomes one of its jobs (with its units: a worker it
-- fills is on_job), the workflow's first timer starts, and the worker is reminded
-- (the caller's frame); the order records 'reminded'. When the worker is away, the
-- order is taken back from it (never offered to it again, the worker told if it is
-- connected) and recorded 'reassigned' by the system, reason 'worker_away': its
-- workflow starts over, it is marked urgent ('prio') and its dispatch starts now.
-- KEYS: order, timers, tried, history, stream, then the rest it plans (the worker's
-- record, schedule and search indexes, the city's indexes).
-- ARGV: now, order id, the reminder frame, the workflow's first step ('' for an
-- order by bare skill), lease (ms) for the caller, which dispatches at once.
-- Reply (BeginReply): action 'begun' (with the worker's state), 'away' (taken back:
-- dispatch it), or 'none' (not a booked job waiting to begin, or not yet); or need.
local okey, timers = KEYS[1], KEYS[2]
local now, oid = clock(ARGV[1]), ARGV[2]
local o = hmap(okey, {'state', 'worker', 'bdue', 'bact', 'sls', 'wtms', 'offer', 'holders'})
if not o.state or not WORKING[o.state] or not o.worker or not o.bdue or o.bact
   or now < tonumber(o.bdue) then
  return reply({action = 'none'})
end
local prefix = city_prefix(okey)
plan_order(okey)
plan_worker(prefix, o.worker)
local need = needs()
if need then return need end
local wkey = prefix .. 'w:' .. o.worker
local w = hmap(wkey, {'node', 'state'})
if not w.node or w.node == '' or OFF_DUTY[w.state or WORKER_INITIAL] then
  call('HSET', okey, 'prio', 1)
  redispatch(okey, oid, o, w.node and w.node ~= '' and 'operator' or nil, ARGV[4],
             tonumber(ARGV[5]), now, {by = 'system', actor = 'system', reason = 'worker_away'})
  return reply({action = 'away'})
end
call('HDEL', prefix .. 'sched:' .. o.worker, oid)
if not add_job(wkey, okey, oid) then worker_step(wkey, o.worker, 'take') end
settle_ttl(wkey)
call('HSET', okey, 'bact', 1)
call('HDEL', okey, 'bdue')
start_workflow(okey, timers, oid, now, o.wtms)
emit(okey, oid, 'reminded', o.state, now, {worker = o.worker, due_at = tonumber(o.sls)})
send_to(wkey, o.worker, 'begun', oid, ARGV[3])
return reply({action = 'begun', worker_state = call('HGET', wkey, 'state')})
