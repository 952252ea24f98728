-- A worker accepts an offer. First come wins: a timeout, a cancel or another
-- worker's accept that ran first makes this one fail with its reason; so does
-- an accept that arrives at or after the offer's expiry, even if the sweeper
-- has not expired it yet. A booked order goes into the worker's schedule (it
-- stays free for other work) until its job begins (begin.lua, when its 'bdue'
-- comes); offer.lua made sure its slot overlaps none held there.
-- KEYS: order, timers, worker, tried, then the rest it plans (history, the city's
-- indexes, the search index of the worker's and the other holders' skills).
-- ARGV: now, order id, offer id, worker id.
-- Reply (AcceptReply): ok 1 with the worker's and order's states, the job's details and
-- when the order was created,
-- or ok 0 with a code; or need.
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "withdraw"
--- @include "plan_order"
--- @include "plan_holders"
--- @include "needs"
--- @include "tally_answer"
--- @include "order_step"
--- @include "worker_step"
--- @include "add_job"
--- @include "start_workflow"
--- @include "release"
--- @include "offer_refusal"
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, oid, offer_id, wid = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local refusal = offer_refusal(okey, tried, offer_id, wid, now)
if refusal then return refused(refusal) end
local prefix = city_prefix(okey)
plan_order(okey)
plan_holders(okey)
local need = needs()
if need then return need end
local w = hmap(okey, {O.step, O.step_timer_ms, O.slot_start, O.slot_end, O.remind_ms,
                      O.pickup_lat, O.pickup_lng})
local sched = schedule_key(prefix, wid)
for _, other in ipairs(split(call('HGET', okey, O.holders))) do
  if other ~= wid then
    local wkey2 = worker_key(prefix, other)
    release(wkey2, other, offer_id)
    withdraw(wkey2, other, oid, offer_id, 'taken')
  end
end
tally_answer(okey, wid, now, PERF_KIND.accepted)
call('HDEL', okey, O.offer, O.holders, O.offer_expires, O.offer_sent)
-- when it accepted and how far it was from the pickup when offered: the time and
-- distance parts of its earnings
call('HSET', okey, O.worker, wid, O.accepted, now,
     O.accept_distance, call('HGET', wkey, W.offer_distance) or 0)
if w[O.slot_start] then  -- booked: in the schedule until its job begins
  local begins = tonumber(w[O.slot_start]) - tonumber(w[O.remind_ms] or '0')
  local state = order_step(okey, oid, ORDER_EVENT.accept, now, {worker = wid, offer_id = offer_id,
                                                      next_step = w[O.step]})
  call('HSET', okey, O.booking_due, begins)
  call('ZADD', timers, math.max(begins, now), oid)
  call('HSET', sched, oid, table.concat({w[O.slot_start], w[O.slot_end], w[O.pickup_lat],
                                         w[O.pickup_lng]}, ' '))
  local keep = tonumber(w[O.slot_end]) - now + 86400000  -- a day after the slot's end at least
  if call('PTTL', sched) < keep then call('PEXPIRE', sched, keep) end
  release(wkey, wid, offer_id)
  return reply({ok = 1, now = now, order_state = state, created = call('HGET', okey, O.created),
                worker_state = call('HGET', wkey, W.state), order = call('HGETALL', okey)})
end
-- The workflow's first step (pinned at creation as wstep) is due now.
local timer = tonumber(w[O.step_timer_ms] or '')
local state = order_step(okey, oid, ORDER_EVENT.accept, now, {worker = wid, offer_id = offer_id,
                         next_step = w[O.step], due_at = timer and now + timer})
start_workflow(okey, timers, oid, now, w[O.step_timer_ms])
call('HDEL', wkey, W.offer, W.offer_frame, W.offer_distance)
local room = add_job(wkey, okey, oid)
worker_step(wkey, wid, WORKER_EVENT.accept)
if room then worker_step(wkey, wid, WORKER_EVENT.free) end
return reply({ok = 1, now = now, order_state = state, created = call('HGET', okey, O.created),
              worker_state = call('HGET', wkey, W.state), order = call('HGETALL', okey)})
