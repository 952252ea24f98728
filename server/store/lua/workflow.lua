-- Do the pending step of a working order: a worker's progress, a customer's or an
-- operator's step or decision, or the system's when the step's timer ran out. What
-- the step does (its core event, the step due next, its timer) the caller worked out
-- from the workflow pinned on the order (server/core/workflow.py); this script
-- makes it happen only if the order is still where the caller saw it.
-- KEYS: order, timers, history, tried, then the rest it plans (the assigned worker
-- with its skills' search indexes and the city's indexes).
-- ARGV: now, order id, by (worker, customer, operator, system), actor id, the state
-- and pending step the caller saw ('' for none), the core event, the step's name,
-- reason, the next pending step ('' when the workflow ends), its timer in ms (''),
-- the step's data (JSON, ''), cancel after it ('1' or ''), a frame for the worker's
-- app ('' for none: a worker doing its own step gets its ack), the category's
-- promised arrival in ms from the accept when this step makes the order arrive
-- ('' for none: counted in the worker's on-time figures); when this step completes
-- the order, the currency of its quote ('' for an order without a price), what
-- its worker earns ('reason=amount,...': prelude's pay) but the time part, and
-- that part's rate per minute (this script reads the clock the history records).
-- Reply (WorkflowReply): ok 1 with the order's and the worker's states (the caller
-- knows the rest of the order: what it read, and what it asked for); or ok 0 with a code: job_not_found (the worker does not hold the
-- job), order_not_found (not the customer's order), illegal_step (the order moved
-- on meanwhile, or is not working); or need.
local okey, timers = KEYS[1], KEYS[2]
local now, oid, by, actor = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local o = hmap(okey, {'state', 'wstep', 'worker', 'customer', 'wdone'})
if by == 'worker' then
  local wkey = city_prefix(okey) .. 'w:' .. actor
  if o.worker ~= actor or not DECLARED[wkey]
     or not contains(split(call('HGET', wkey, 'jobs')), oid) then
    return refused('job_not_found')
  end
elseif by == 'customer' and (not o.state or o.customer ~= actor) then
  return refused('order_not_found')
end
if not o.state or not WORKING[o.state] or o.state ~= ARGV[5] or (o.wstep or '') ~= ARGV[6] then
  return refused('illegal_step')
end
local prefix = city_prefix(okey)
plan_order(okey)
if o.worker then plan_worker(prefix, o.worker) end
local currency = ARGV[16]
if o.worker and currency ~= '' then plan_pay(prefix, o.worker, now) end
local need = needs()
if need then return need end
local pending, timer = ARGV[10], tonumber(ARGV[11])
local extra = {type = ARGV[8], worker = o.worker, by = by, actor = actor}
if ARGV[9] ~= '' then extra.reason = ARGV[9] end
if ARGV[12] ~= '' then extra.data = cjson.decode(ARGV[12]) end
if pending ~= '' then extra.next_step = pending end
if timer then extra.due_at = now + timer end
local state = order_step(okey, oid, ARGV[7], now, extra)
if not state then return refused('illegal_step') end
local done = split(o.wdone)
done[#done + 1] = ARGV[8]
call('HSET', okey, 'wdone', table.concat(done, ','))
if timer then
  call('HSET', okey, 'wstep', pending, 'wdue', now + timer)
  call('ZADD', timers, now + timer, oid)
else
  call('HDEL', okey, 'wdue')
  call('ZREM', timers, oid)
  if pending ~= '' then call('HSET', okey, 'wstep', pending) else call('HDEL', okey, 'wstep') end
end
if ARGV[13] == '1' then
  state = order_step(okey, oid, 'cancel', now,
                     {worker = o.worker, by = by, actor = actor, reason = 'rejected'})
end
local wkey = o.worker and prefix .. 'w:' .. o.worker
local accepted = wkey and ARGV[15] ~= '' and tonumber(call('HGET', okey, 'acc') or '')
if accepted then
  tally(prefix, o.worker, now, 't', 'n', 1)
  if now - accepted <= tonumber(ARGV[15]) then tally(prefix, o.worker, now, 't', 'ok', 1) end
end
if wkey then
  if TERMINAL[state] then
    end_job(wkey, o.worker, oid)
    if ARGV[13] ~= '1' then  -- completed: when (for its idle time), and its pay
      local perf = prefix .. 'perf:' .. o.worker
      call('HSET', perf, 'last', now)
      call('PEXPIRE', perf, PERF_DAYS * 86400000)
      if currency ~= '' then
        local lines = with_time_pay(pay_lines(ARGV[17]), okey, tonumber(ARGV[18]), now)
        pay(okey, oid, o.worker, currency, lines, true, now)
      end
    end
  end
  if ARGV[14] ~= '' then
    send_to(wkey, o.worker, ARGV[13] == '1' and 'cancelled' or 'job', oid, ARGV[14])
  end
end
return reply({ok = 1, order_state = state, worker_state = wkey and call('HGET', wkey, 'state')})
