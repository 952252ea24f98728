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
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "send_to"
--- @include "plan_worker"
--- @include "plan_order"
--- @include "needs"
--- @include "settle_ttl"
--- @include "emit"
--- @include "worker_step"
--- @include "add_job"
--- @include "start_workflow"
--- @include "redispatch"
local okey, timers = KEYS[1], KEYS[2]
local now, oid = clock(ARGV[1]), ARGV[2]
local o = hmap(okey, {O.state, O.worker, O.booking_due, O.booking_begun, O.slot_start,
                      O.step_timer_ms, O.offer, O.holders})
if not o[O.state] or not WORKING[o[O.state]] or not o[O.worker] or not o[O.booking_due]
   or o[O.booking_begun] or now < tonumber(o[O.booking_due]) then
  return reply({action = 'none'})
end
local worker = o[O.worker]
local prefix = city_prefix(okey)
plan_order(okey)
plan_worker(prefix, worker)
local need = needs()
if need then return need end
local wkey = worker_key(prefix, worker)
local w = hmap(wkey, {W.node, W.state})
if not w[W.node] or w[W.node] == '' or OFF_DUTY[w[W.state] or WORKER_INITIAL] then
  call('HSET', okey, O.urgent, 1)
  redispatch(okey, oid, o, w[W.node] and w[W.node] ~= '' and 'operator' or nil, ARGV[4],
             tonumber(ARGV[5]), now, {by = 'system', actor = 'system', reason = 'worker_away'})
  return reply({action = 'away'})
end
call('HDEL', schedule_key(prefix, worker), oid)
if not add_job(wkey, okey, oid) then worker_step(wkey, worker, WORKER_EVENT.take) end
settle_ttl(wkey)
call('HSET', okey, O.booking_begun, 1)
call('HDEL', okey, O.booking_due)
start_workflow(okey, timers, oid, now, o[O.step_timer_ms])
emit(okey, oid, ORDER_FACT.reminded, o[O.state], now,
     {worker = worker, due_at = tonumber(o[O.slot_start])})
send_to(wkey, worker, 'begun', oid, ARGV[3])
return reply({action = 'begun', worker_state = call('HGET', wkey, W.state)})
