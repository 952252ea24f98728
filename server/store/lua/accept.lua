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
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, oid, offer_id, wid = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local refusal = offer_refusal(okey, tried, offer_id, wid, now)
if refusal then return refused(refusal) end
local prefix = city_prefix(okey)
plan_order(okey)
plan_holders(okey)
local need = needs()
if need then return need end
local w = hmap(okey, {'wstep', 'wtms', 'sls', 'sle', 'rems', 'plat', 'plng'})
local sched = prefix .. 'sched:' .. wid
for _, other in ipairs(split(call('HGET', okey, 'holders'))) do
  if other ~= wid then
    local wkey2 = prefix .. 'w:' .. other
    release(wkey2, other, offer_id)
    withdraw(wkey2, other, oid, offer_id, 'taken')
  end
end
tally_answer(okey, wid, now, 'a')
call('HDEL', okey, 'offer', 'holders', 'exp', 'osent')
-- when it accepted and how far it was from the pickup when offered: the time and
-- distance parts of its earnings
call('HSET', okey, 'worker', wid, 'acc', now, 'adist', call('HGET', wkey, 'odist') or 0)
if w.sls then  -- booked: in the schedule until its job begins
  local begins = tonumber(w.sls) - tonumber(w.rems or '0')
  local state = order_step(okey, oid, 'accept', now, {worker = wid, offer_id = offer_id,
                                                      next_step = w.wstep})
  call('HSET', okey, 'bdue', begins)
  call('ZADD', timers, math.max(begins, now), oid)
  call('HSET', sched, oid, table.concat({w.sls, w.sle, w.plat, w.plng}, ' '))
  local keep = tonumber(w.sle) - now + 86400000  -- a day after the slot's end at least
  if call('PTTL', sched) < keep then call('PEXPIRE', sched, keep) end
  release(wkey, wid, offer_id)
  return reply({ok = 1, now = now, order_state = state, created = call('HGET', okey, 'created'),
                worker_state = call('HGET', wkey, 'state'), order = call('HGETALL', okey)})
end
-- The workflow's first step (pinned at creation as wstep) is due now.
local timer = tonumber(w.wtms or '')
local state = order_step(okey, oid, 'accept', now, {worker = wid, offer_id = offer_id,
                         next_step = w.wstep, due_at = timer and now + timer})
start_workflow(okey, timers, oid, now, w.wtms)
call('HDEL', wkey, 'offer', 'offer_frame', 'odist')
local room = add_job(wkey, okey, oid)
worker_step(wkey, wid, 'accept')
if room then worker_step(wkey, wid, 'free') end
return reply({ok = 1, now = now, order_state = state, created = call('HGET', okey, 'created'),
              worker_state = call('HGET', wkey, 'state'), order = call('HGETALL', okey)})
