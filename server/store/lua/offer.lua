-- Offer an order to the chosen workers, if nobody changed it since the tick
-- (dispatch version dv): two nodes dispatching one order cannot both offer it.
-- KEYS: order, timers, tried.
-- ARGV: order id, dv, offer id, expires at, now, then worker id / frame pairs.
-- Returns {1, holder, ...}, or {0, reason} with reason 'stale' or 'nobody'.
local okey, timers, tried = KEYS[1], KEYS[2], KEYS[3]
local oid, dv, offer_id, exp, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local o = redis.call('HMGET', okey, 'state', 'dv')
if o[1] ~= 'dispatching' or o[2] ~= dv then return {0, 'stale'} end
local prefix = city_prefix(okey)
local holders = {}
for i = 6, #ARGV, 2 do
  local wid, frame = ARGV[i], ARGV[i + 1]
  local wkey = prefix .. 'w:' .. wid
  if redis.call('SISMEMBER', tried, wid) == 0 and worker_step(wkey, 'offer') then
    redis.call('HSET', wkey, 'offer', offer_id, 'offer_frame', frame)
    redis.call('SADD', tried, wid)
    send(wkey, wid, 'offer', oid, frame)
    holders[#holders + 1] = wid
  end
end
if #holders == 0 then return {0, 'nobody'} end
redis.call('HSET', okey, 'offer', offer_id, 'holders', table.concat(holders, ','), 'exp', exp,
           'dv', tonumber(dv) + 1)
order_step(okey, oid, 'offer', now, {offer_id = offer_id, worker = table.concat(holders, ',')})
redis.call('ZADD', timers, exp, oid)
local out = {1}
for _, wid in ipairs(holders) do out[#out + 1] = wid end
return out
