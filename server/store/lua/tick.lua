-- Look at one claimed order: expire an offer whose time is up, and if the order
-- needs a worker, search for candidates.
-- KEYS: order, timers, geo, seen, tried.
-- ARGV: order id, now, radius steps in m (comma list, ascending), how many candidates are
--       wanted, stale before (ms), lease until.
-- Returns {'done'} (terminal or gone), {'wait'} (offer still open),
-- or {'search', created_at, dv, skill, mode, plat, plng, dlat, dlng, note, w1, d1, w2, d2, ...}
-- with candidates nearest first.
local okey, timers, geo, seen, tried = KEYS[1], KEYS[2], KEYS[3], KEYS[4], KEYS[5]
local oid, now = ARGV[1], ARGV[2]
local o = redis.call('HMGET', okey, 'state', 'offer', 'holders', 'exp', 'plng', 'plat',
                     'skill', 'created', 'dv', 'mode', 'dlat', 'dlng', 'note')
local state = o[1]
if not state or TERMINAL[state] then
  redis.call('ZREM', timers, oid)
  return {'done'}
end
if state == 'offered' then
  if tonumber(now) < tonumber(o[4]) then
    redis.call('ZADD', timers, o[4], oid)
    return {'wait'}
  end
  local prefix = city_prefix(okey)
  for _, wid in ipairs(split(o[3])) do
    local wkey = prefix .. 'w:' .. wid
    if redis.call('HGET', wkey, 'offer') == o[2] then
      release(wkey, o[2])
      withdraw(wkey, wid, oid, o[2], 'expired')
    end
  end
  redis.call('HDEL', okey, 'offer', 'holders', 'exp')
  order_step(okey, oid, 'expire', now, {offer_id = o[2]})
  redis.call('ZADD', timers, ARGV[6], oid)
elseif state ~= 'dispatching' then
  redis.call('ZREM', timers, oid)
  return {'done'}
end
local out = {'search', o[8], o[9], o[7], o[10], o[6], o[5], o[11] or '', o[12] or '',
             o[13] or ''}
local prefix = city_prefix(okey)
local stale_before = tonumber(ARGV[5])
local skill_mark = ',' .. o[7] .. ','
local want = tonumber(ARGV[4])

-- Eligible: seen recently, never offered this order, available, skilled.
local function eligible(wid)
  local last = tonumber(redis.call('ZSCORE', seen, wid) or '0')
  if last < stale_before or redis.call('SISMEMBER', tried, wid) == 1 then return false end
  local w = redis.call('HMGET', prefix .. 'w:' .. wid, 'state', 'skills')
  return w[1] == 'available' and w[2] ~= false and string.find(w[2], skill_mark, 1, true) ~= nil
end

-- Widen the radius step by step; stop at the first step that holds anyone.
-- Within a step, look at the nearest few, and further only while all of
-- those were ineligible (busy, stale, unskilled).
for radius in string.gmatch(ARGV[3], '[^,]+') do
  local fetch, found = want * 2, 0
  repeat
    local hits = redis.call('GEOSEARCH', geo, 'FROMLONLAT', o[5], o[6], 'BYRADIUS', radius, 'm',
                            'ASC', 'COUNT', fetch, 'WITHDIST')
    for i = found + 1, #hits do
      if eligible(hits[i][1]) then
        out[#out + 1] = hits[i][1]
        out[#out + 1] = hits[i][2]
        if #out - 10 >= want * 2 then return out end
      end
    end
    local saturated = #hits == fetch
    found, fetch = #hits, fetch * 4
  until #out > 10 or not saturated or fetch > 4096
  if #out > 10 then return out end
end
return out
