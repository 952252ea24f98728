-- An operator takes an order from whoever has it and dispatches it again, or its
-- worker hands it back: the holders of its open offer are told it is withdrawn,
-- or its worker that the job is cancelled (not a worker handing it back: it gets
-- an ack) and is free again; none of them is ever offered it again (they are in
-- its tried set). Its workflow starts over at its first step, and its dispatch
-- deadline runs from now.
-- KEYS: order, timers, tried, then the rest it plans (history, the city's indexes,
-- and the holders or the worker with their skills' search indexes).
-- ARGV: now, then opts (ReassignArgs, server/store/arguments.py): order_id, actor,
-- reason ('' for none), first_step (the workflow's, '' for an order by bare skill),
-- lease_ms for the caller, which dispatches the order at once; by ('operator', or
-- 'worker': then the actor must hold the job, and the order must still have the
-- number of steps done that the caller saw, done).
-- Reply (ReassignReply): ok 1 with the order's state and the workers it was taken
-- from, or ok 0 with a code (order_not_found, not_reassignable; for a worker
-- job_not_found, or stale: a step was done since the caller read it); or need.
--- @include "call"
--- @include "clock"
--- @include "split"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
--- @include "plan_order"
--- @include "plan_takers"
--- @include "needs"
--- @include "tally"
--- @include "redispatch"
local okey = KEYS[1]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local oid, actor, by = opts.order_id, opts.actor, opts.by
local o = hmap(okey, {O.state, O.offer, O.holders, O.worker, O.steps_done})
if not o[O.state] then return refused('order_not_found') end
if by == 'worker' and (o[O.worker] ~= actor or not WORKING[o[O.state]]) then
  return refused('job_not_found')
end
local row = ORDER_T[o[O.state]]
if not (row and row[ORDER_EVENT.reassign]) then return refused('not_reassignable') end
if by == 'worker' and #split(o[O.steps_done]) ~= opts.done then
  return refused('stale')
end
plan_order(okey)
plan_takers(okey, o)
local need = needs()
if need then return need end
local extra = {by = by, actor = actor}
if opts.reason ~= '' then extra.reason = opts.reason end
-- a worker handing its job back is answered by its ack, not told
local state, from = redispatch(okey, oid, o, by ~= 'worker' and 'operator' or nil,
                               opts.first_step, opts.lease_ms, now, extra)
-- a hand-back counts against the worker (one counter per order, which an
-- operator may waive: waive.lua)
if by == 'worker' then tally(city_prefix(okey), actor, now, PERF_KIND.handed_back, oid, 1) end
local wstate = nil
if by == 'worker' then wstate = call('HGET', worker_key(city_prefix(okey), actor), W.state) end
return reply({ok = 1, state = state, workers = from, worker_state = wstate})
