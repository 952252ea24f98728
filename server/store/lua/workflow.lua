-- Do the pending step of a working order: a worker's progress, a customer's or an
-- operator's step or decision, or the system's when the step's timer ran out. What
-- the step does (its core event, the step due next, its timer) the caller worked out
-- from the workflow pinned on the order (server/core/workflow.py); this script
-- makes it happen only if the order is still where the caller saw it.
-- KEYS: order, timers, history, tried, then the rest it plans (the assigned worker
-- with its skills' search indexes and the city's indexes).
-- ARGV: now, then opts (WorkflowArgs, server/store/arguments.py): order_id; by
-- (worker, customer, operator, system) and actor; the state and pending step the
-- caller saw ('' for none); the core event, the step's name (recorded) and reason;
-- next_pending ('' when the workflow ends) and its timer_ms (nil for none); data (the
-- step's, JSON, ''); cancel (true: the order is cancelled after the step); frame
-- for the worker's app ('' for none: a worker doing its own step gets its ack);
-- arrival_ms, the category's promised arrival from the accept when this step makes
-- the order arrive (nil for none: counted in the worker's on-time figures); when
-- this step completes the order, the currency of its quote ('' for an order without
-- a price), pay (what its worker earns, 'reason=amount,...': lib/pay.lua, but the
-- time part) and per_minute, that part's rate (this script reads the clock the
-- history records).
-- Reply (WorkflowReply): ok 1 with the order's and the worker's states (the caller
-- knows the rest of the order: what it read, and what it asked for); or ok 0 with
-- a code: job_not_found (the worker does not hold the job), order_not_found (not
-- the customer's order), illegal_step (the order moved on meanwhile, or is not
-- working); or need.
--- @include "declared"
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "contains"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "send_to"
--- @include "plan_worker"
--- @include "plan_order"
--- @include "needs"
--- @include "tally"
--- @include "plan_pay"
--- @include "pay"
--- @include "pay_lines"
--- @include "with_time_pay"
--- @include "order_step"
--- @include "end_job"
local okey, timers = KEYS[1], KEYS[2]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local oid, by, actor = opts.order_id, opts.by, opts.actor
local o = hmap(okey, {O.state, O.step, O.worker, O.customer, O.steps_done})
local worker = o[O.worker]
if by == 'worker' then
  local wkey = worker_key(city_prefix(okey), actor)
  if worker ~= actor or not DECLARED[wkey]
     or not contains(split(call('HGET', wkey, W.jobs)), oid) then
    return refused('job_not_found')
  end
elseif by == 'customer' and (not o[O.state] or o[O.customer] ~= actor) then
  return refused('order_not_found')
end
if not o[O.state] or not WORKING[o[O.state]] or o[O.state] ~= opts.state
   or (o[O.step] or '') ~= opts.pending then
  return refused('illegal_step')
end
local prefix = city_prefix(okey)
plan_order(okey)
if worker then plan_worker(prefix, worker) end
local currency = opts.currency
if worker and currency ~= '' then plan_pay(prefix, worker, now) end
local need = needs()
if need then return need end
local pending, timer = opts.next_pending, opts.timer_ms
local extra = {type = opts.step, worker = worker, by = by, actor = actor}
if opts.reason ~= '' then extra.reason = opts.reason end
if opts.data ~= '' then extra.data = cjson.decode(opts.data) end
if pending ~= '' then extra.next_step = pending end
if timer then extra.due_at = now + timer end
local state = order_step(okey, oid, opts.event, now, extra)
if not state then return refused('illegal_step') end
local done = split(o[O.steps_done])
done[#done + 1] = opts.step
call('HSET', okey, O.steps_done, table.concat(done, ','))
if timer then
  call('HSET', okey, O.step, pending, O.step_due, now + timer)
  call('ZADD', timers, now + timer, oid)
else
  call('HDEL', okey, O.step_due)
  call('ZREM', timers, oid)
  if pending ~= '' then call('HSET', okey, O.step, pending) else call('HDEL', okey, O.step) end
end
if opts.cancel then
  state = order_step(okey, oid, ORDER_EVENT.cancel, now,
                     {worker = worker, by = by, actor = actor, reason = 'rejected'})
end
local wkey = worker and worker_key(prefix, worker)
local accepted = wkey and opts.arrival_ms and tonumber(call('HGET', okey, O.accepted) or '')
if accepted then
  tally(prefix, worker, now, PERF_KIND.arrived, PERF_FIGURE.count, 1)
  if now - accepted <= opts.arrival_ms then
    tally(prefix, worker, now, PERF_KIND.arrived, PERF_FIGURE.on_time, 1)
  end
end
if wkey then
  if TERMINAL[state] then
    end_job(wkey, worker, oid)
    if not opts.cancel then  -- completed: when (for its idle time), and its pay
      local perf = perf_key(prefix, worker)
      call('HSET', perf, P.last_job, now)
      call('PEXPIRE', perf, PERF_DAYS * 86400000)
      if currency ~= '' then
        local lines = with_time_pay(pay_lines(opts.pay), okey, opts.per_minute, now)
        pay(okey, oid, worker, currency, lines, true, now)
      end
    end
  end
  if opts.frame ~= '' then
    send_to(wkey, worker, opts.cancel and 'cancelled' or 'job', oid, opts.frame)
  end
end
return reply({ok = 1, order_state = state, worker_state = wkey and call('HGET', wkey, W.state)})
