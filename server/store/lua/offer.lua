-- Offer an order to the chosen workers, if nobody changed it since the tick
-- (dispatch version dv): two nodes dispatching one order cannot both offer it.
-- A worker whose free capacity is less than the units the order's jobs use (its
-- category's capacity_units) is passed over for this order; so is, for a booked
-- order, a worker whose schedule holds a job in a slot overlapping the order's
-- (the caller left out those it read too close to one; this settles a race with
-- an accept made since).
-- KEYS: order, timers, tried, then the rest it plans (history, the city's indexes,
-- each worker's record and the search index of its skills).
-- ARGV: now, order id, dv, offer id, expires at, then a worker id, its distance to the
-- pickup (m: kept with its offer, for the distance part of its earnings) and its frame
-- for each worker.
-- Reply (OfferReply): made 1 with the holders, or made 0 with reason 'stale' or
-- 'nobody'; or need.
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "send"
--- @include "plan_worker"
--- @include "plan_order"
--- @include "needs"
--- @include "tally"
--- @include "order_step"
--- @include "worker_step"
--- @include "units_of"
--- @include "load_of"
--- @include "holders_extra"
local okey, timers, tried = KEYS[1], KEYS[2], KEYS[3]
local now, oid, dv, offer_id, exp = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local o = hmap(okey, {O.state, O.dispatch_version})
local row = ORDER_T[o[O.state] or '']
if not (row and row[ORDER_EVENT.offer]) or o[O.dispatch_version] ~= dv then
  return reply({made = 0, reason = 'stale'})
end
local prefix = city_prefix(okey)
plan_order(okey)
for i = 6, #ARGV, 3 do plan_worker(prefix, ARGV[i]) end
local need = needs()
if need then return need end
local holders = {}
local units = units_of(okey)
local slot = hmap(okey, {O.slot_start, O.slot_end})

-- Whether worker wid holds a booked job whose slot overlaps the order's.
local function overlaps(wid)
  if not slot[O.slot_start] then return false end
  for _, held in ipairs(call('HVALS', schedule_key(prefix, wid))) do
    local s, e = string.match(held, '^(%d+) (%d+)')
    if tonumber(slot[O.slot_start]) < tonumber(e) and tonumber(s) < tonumber(slot[O.slot_end]) then
      return true
    end
  end
  return false
end

for i = 6, #ARGV, 3 do
  local wid, frame = ARGV[i], ARGV[i + 2]
  local wkey = worker_key(prefix, wid)
  local node = call('HGET', wkey, W.node)
  local room = tonumber(call('HGET', wkey, W.capacity) or '1') - load_of(wkey)
  if overlaps(wid) then  -- luckless, not tried: it may have this order once that one ends
  elseif units > room and CANDIDATE[call('HGET', wkey, W.state) or WORKER_INITIAL] then
    -- Too little room for this order's units: passed over for it (as if it had
    -- been offered it), so the search moves on to the next candidate.
    call('SADD', tried, wid)
  elseif node and node ~= '' and call('SISMEMBER', tried, wid) == 0
     and worker_step(wkey, wid, WORKER_EVENT.offer) then
    call('HSET', wkey, W.offer, offer_id, W.offer_frame, frame, W.offer_distance, ARGV[i + 1])
    call('SADD', tried, wid)
    send(prefix, node, wid, 'offer', oid, frame)
    holders[#holders + 1] = wid
    tally(prefix, wid, now, PERF_KIND.offered, PERF_FIGURE.count, 1)
  end
end
if #holders == 0 then return reply({made = 0, reason = 'nobody'}) end
call('HSET', okey, O.offer, offer_id, O.holders, table.concat(holders, ','), O.offer_expires, exp,
           O.dispatch_version, tonumber(dv) + 1, O.offer_sent, now)
order_step(okey, oid, ORDER_EVENT.offer, now, holders_extra(holders, {offer_id = offer_id}))
call('ZADD', timers, exp, oid)
return reply({made = 1, holders = holders})
