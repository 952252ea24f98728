-- A worker accepts an offer. First come wins: a timeout, a cancel or another
-- worker's accept that ran first makes this one fail with its reason.
-- KEYS: order, timers, worker, tried.  ARGV: order id, offer id, worker id, now.
-- Returns {1, worker state, skill, plat, plng, dlat, dlng, note, order state} or {0, code}.
local okey, timers, wkey, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local oid, offer_id, wid, now = ARGV[1], ARGV[2], ARGV[3], ARGV[4]
local refusal = offer_refusal(okey, tried, offer_id, wid)
if refusal then return {0, refusal} end
local prefix = city_prefix(okey)
for _, other in ipairs(split(redis.call('HGET', okey, 'holders'))) do
  if other ~= wid then
    local okey2 = prefix .. 'w:' .. other
    release(okey2, offer_id)
    withdraw(okey2, other, oid, offer_id, 'taken')
  end
end
redis.call('HDEL', okey, 'offer', 'holders', 'exp')
redis.call('HSET', okey, 'worker', wid)
local state = order_step(okey, oid, 'accept', now, {worker = wid, offer_id = offer_id})
redis.call('ZREM', timers, oid)
redis.call('HDEL', wkey, 'offer', 'offer_frame')
local jobs = split(redis.call('HGET', wkey, 'jobs'))
jobs[#jobs + 1] = oid
redis.call('HSET', wkey, 'jobs', table.concat(jobs, ','))
worker_step(wkey, 'accept')
if #jobs < tonumber(redis.call('HGET', wkey, 'capacity') or '1') then worker_step(wkey, 'free') end
local o = redis.call('HMGET', okey, 'skill', 'plat', 'plng', 'dlat', 'dlng', 'note')
return {1, redis.call('HGET', wkey, 'state'), o[1], o[2], o[3], o[4] or '', o[5] or '',
        o[6] or '', state}
