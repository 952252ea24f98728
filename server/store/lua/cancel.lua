-- The customer cancels an order. Workers holding its offer are told it is
-- withdrawn; an assigned worker is told its job is cancelled and is free again.
-- KEYS: order, timers.  ARGV: order id, customer, now.
-- Returns {1, state} or {0, code}.
local okey, timers = KEYS[1], KEYS[2]
local oid, customer, now = ARGV[1], ARGV[2], ARGV[3]
local o = redis.call('HMGET', okey, 'state', 'customer', 'offer', 'holders', 'worker')
if not o[1] or o[2] ~= customer then return {0, 'order_not_found'} end
local row = ORDER_T[o[1]]
if not (row and row['cancel']) then return {0, 'not_cancellable'} end
local prefix = city_prefix(okey)
if o[1] == 'offered' then
  for _, wid in ipairs(split(o[4])) do
    local wkey = prefix .. 'w:' .. wid
    release(wkey, o[3])
    withdraw(wkey, wid, oid, o[3], 'cancelled')
  end
  redis.call('HDEL', okey, 'offer', 'holders', 'exp')
elseif o[5] then
  local wkey = prefix .. 'w:' .. o[5]
  end_job(wkey, oid)
  send(wkey, o[5], 'cancelled', oid,
       cjson.encode({type = 'job_cancelled', order_id = oid, reason = 'customer'}))
end
redis.call('ZREM', timers, oid)
return {1, order_step(okey, oid, 'cancel', now, {reason = 'customer'})}
