-- The customer cancels an order. Workers holding its offer are told it is
-- withdrawn; an assigned worker is told its job is cancelled and is free again.
-- KEYS: order, timers, then the rest it plans (history, tried, the city's indexes,
-- and the holders or the assigned worker with their skills' search indexes).
-- ARGV: now, order id, customer.
-- Reply (StepReply): ok 1 with the order's state, or ok 0 with a code; or need.
local okey, timers = KEYS[1], KEYS[2]
local now, oid, customer = clock(ARGV[1]), ARGV[2], ARGV[3]
local o = hmap(okey, {'state', 'customer', 'offer', 'holders', 'worker'})
if not o.state or o.customer ~= customer then return refused('order_not_found') end
local row = ORDER_T[o.state]
if not (row and row['cancel']) then return refused('not_cancellable') end
local prefix = city_prefix(okey)
plan_order(okey)
if OFFER_OPEN[o.state] then
  plan_holders(okey)
elseif o.worker then
  plan_worker(prefix, o.worker)
end
local need = needs()
if need then return need end
if OFFER_OPEN[o.state] then
  for _, wid in ipairs(split(o.holders)) do
    local wkey = prefix .. 'w:' .. wid
    release(wkey, wid, o.offer)
    withdraw(wkey, wid, oid, o.offer, 'cancelled')
  end
  call('HDEL', okey, 'offer', 'holders', 'exp')
elseif o.worker then
  local wkey = prefix .. 'w:' .. o.worker
  end_job(wkey, o.worker, oid)
  send_to(wkey, o.worker, 'cancelled', oid,
          cjson.encode({type = 'job_cancelled', order_id = oid, reason = 'customer'}))
end
call('ZREM', timers, oid)
return reply({ok = 1, state = order_step(okey, oid, 'cancel', now,
                                         {reason = 'customer', worker = o.worker})})
