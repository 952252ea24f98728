-- Look at one claimed order: expire an offer whose time is up, and if the order
-- needs a worker, search for candidates.
-- KEYS: order, timers, tried.
-- ARGV: now, order id, radius steps in m (comma list, ascending), how many candidates are
--       wanted, max location age (ms), lease (ms), live nodes (comma list).
-- Reply (TickReply): action 'done' (ended or gone), 'wait' (offer still open), or
-- 'search' with the order's details and the candidates of the first radius step
-- holding any, nearest first (ids and dists).
local okey, timers, tried = KEYS[1], KEYS[2], KEYS[3]
local now, oid = clock(ARGV[1]), ARGV[2]
local state = redis.call('HGET', okey, 'state')
if not state or not (SEARCHING[state] or OFFER_OPEN[state]) then
  redis.call('ZREM', timers, oid)
  return reply({action = 'done'})
end
if OFFER_OPEN[state] then
  local exp = tonumber(redis.call('HGET', okey, 'exp'))
  if now < exp then
    redis.call('ZADD', timers, exp, oid)
    return reply({action = 'wait'})
  end
  expire_offer(okey, oid, now)
end
redis.call('ZADD', timers, now + tonumber(ARGV[6]), oid)
local o = hmap(okey, {'plng', 'plat', 'skill', 'created', 'dv', 'mode', 'dlat', 'dlng', 'note'})
local prefix = city_prefix(okey)
local free, seen = prefix .. 'free:' .. o.skill, prefix .. 'seen'
local stale_before = now - tonumber(ARGV[5])
local want = tonumber(ARGV[4])
local live = {}
for _, node in ipairs(split(ARGV[7])) do live[node] = true end

-- Everyone in free:<skill> is connected, available and skilled; what is left to
-- check is a fresh last-seen, a live node, and never having been offered this order.
local function eligible(wid)
  local last = tonumber(redis.call('ZSCORE', seen, wid) or '0')
  if last < stale_before or redis.call('SISMEMBER', tried, wid) == 1 then return false end
  return live[redis.call('HGET', prefix .. 'w:' .. wid, 'node')] == true
end

-- Widen the radius step by step; stop at the first step that holds anyone.
-- Within a step, look at the nearest few, and further only while all of
-- those were ineligible (stale, already tried, on a dead node).
local ids, dists = {}, {}
for radius in string.gmatch(ARGV[3], '[^,]+') do
  local fetch, seen_hits = want * 2, 0
  repeat
    local hits = redis.call('GEOSEARCH', free, 'FROMLONLAT', o.plng, o.plat, 'BYRADIUS', radius,
                            'm', 'ASC', 'COUNT', fetch, 'WITHDIST')
    for i = seen_hits + 1, #hits do
      if #ids < want and eligible(hits[i][1]) then
        ids[#ids + 1] = hits[i][1]
        dists[#dists + 1] = hits[i][2]
      end
    end
    local saturated = #hits == fetch
    seen_hits, fetch = #hits, fetch * 4
  until #ids >= want or not saturated or fetch > 4096
  if #ids > 0 then break end
end
o.action, o.now, o.ids, o.dists = 'search', now, ids, dists
return reply(o)
