-- Look at one claimed order: expire an offer whose time is up, and if the order
-- needs a worker, search for candidates (a booked order waiting created begins its
-- dispatch when its 'dat' comes); for a working order whose pending step has a
-- timer (an approval, a system step), say when that step is due, and for a booked
-- job accepted and not begun, when it begins.
-- KEYS: order, timers, tried, then the rest it plans (history, online, seen,
--       pos, holds, free:<the order's skill>, and the holders of an offer it expires).
-- ARGV: now, then opts (TickArgs, server/store/arguments.py): order_id, radii (radius
--       steps in m, comma list, ascending; the order's own when its category pinned
--       some), want (how many candidates), max_age_ms (a location's), lease_ms,
--       live_nodes (comma list).
-- Reply (TickReply): action 'done' (ended or gone), 'wait' (offer still open, or a
-- step's timer not yet run out), 'step' (the pending step's timer ran out: the
-- caller does it, within the lease the order's timer now holds), 'begin' (a booked
-- job's time to begin came: likewise, begin.lua), or
-- 'search' with the order's details (with what its category pinned: its policy, its
-- ranking weights) and the candidates
-- of the first radius step holding any, nearest first (ids, dists, and each one's
-- skills), each holding every further skill the order needs; or need.
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "split"
--- @include "contains"
--- @include "hmap"
--- @include "reply"
--- @include "online"
--- @include "plan_order"
--- @include "plan_holders"
--- @include "needs"
--- @include "order_step"
--- @include "expire_offer"
local okey, timers, tried = KEYS[1], KEYS[2], KEYS[3]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local oid = opts.order_id
local prefix = city_prefix(okey)
local state = call('HGET', okey, O.state)
local open = state and OFFER_OPEN[state]
local starting = state and ORDER_T[state] and ORDER_T[state][ORDER_EVENT.dispatch]
local starts = starting and tonumber(call('HGET', okey, O.dispatch_at) or '0')
if starts and now < starts then
  call('ZADD', timers, starts, oid)
  return reply({action = 'wait'})
end
-- A working order waits on a timer: a booked job's beginning, else its pending step's.
local due, action = nil, nil
if state and WORKING[state] then
  local w = hmap(okey, {O.booking_begun, O.booking_due, O.step_due})
  if w[O.booking_due] and not w[O.booking_begun] then
    due, action = tonumber(w[O.booking_due]), 'begin'
  elseif w[O.step_due] then
    due, action = tonumber(w[O.step_due]), 'step'
  end
end
if due then
  if now < due then
    call('ZADD', timers, due, oid)
    return reply({action = 'wait'})
  end
  call('ZADD', timers, now + opts.lease_ms, oid)
  return reply({action = action, step = action == 'step' and call('HGET', okey, O.step) or nil})
end
if not state or not (SEARCHING[state] or open or starting) then
  call('ZREM', timers, oid)
  return reply({action = 'done'})
end
local exp = open and tonumber(call('HGET', okey, O.offer_expires))
if open and now < exp then
  call('ZADD', timers, exp, oid)
  return reply({action = 'wait'})
end
plan_order(okey)
for _, key in ipairs({online_key(prefix), seen_key(prefix), pos_key(prefix), holds_key(prefix)}) do
  want(key)
end
want(free_key(prefix, call('HGET', okey, O.skill)))
if open then plan_holders(okey) end
local need = needs()
if need then return need end
if open then expire_offer(okey, oid, now) end
if starting then
  order_step(okey, oid, ORDER_EVENT.dispatch, now, nil)
  call('HSET', okey, O.dispatch_from, now)
end
call('ZADD', timers, now + opts.lease_ms, oid)
local o = hmap(okey, {O.pickup_lng, O.pickup_lat, O.skill, O.created, O.dispatch_version, O.mode,
                      O.dropoff_lat, O.dropoff_lng, O.note, O.radii, O.skills, O.offer_timeout_ms,
                      O.max_dispatch_ms, O.broadcast_size, O.category, O.category_version,
                      O.attributes, O.quote, O.steps, O.dispatch_from, O.customer, O.ranking,
                      O.slot_start, O.slot_end, O.urgent})
local also = split(o[O.skills])
-- The order's deadline runs from when its dispatch (re)started: an operator's
-- reassign starts it again, an extension moves it on.
if o[O.dispatch_from] then o[O.created] = o[O.dispatch_from] end
local customer, holds = o[O.customer], holds_key(prefix)
local any_held = call('EXISTS', holds) == 1  -- most cities hold nobody: no look per candidate
o[O.skills], o[O.dispatch_from], o[O.customer] = nil, nil, nil
local free, seen = free_key(prefix, o[O.skill]), seen_key(prefix)
local stale_before = now - opts.max_age_ms
local want_n = opts.want
local live = {}
for _, node in ipairs(split(opts.live_nodes)) do live[node] = true end

-- Whether an operator holds the worker back: blocked, blocked for this order's
-- customer, or paused (a pause that is over is lifted here).
local function held(wid)
  if not any_held then return false end
  local h = call('HMGET', holds, blocked_field(wid), blocked_for_field(customer, wid),
                   paused_field(wid))
  if h[1] or h[2] then return true end
  if not h[3] then return false end
  if tonumber(h[3]) > now then return true end
  call('HDEL', holds, paused_field(wid))
  return false
end

-- Everyone in free:<skill> is connected, available and skilled; what is left to
-- check is a fresh last-seen, a live node, never having been offered this
-- order, and no operator's hold. Returns the worker's skills when it is eligible.
local function eligible(wid)
  local last = tonumber(call('ZSCORE', seen, wid) or '0')
  if last < stale_before or call('SISMEMBER', tried, wid) == 1 or held(wid) then return nil end
  local node, skills = online(prefix, wid)
  if not live[node] then return nil end
  if #also > 0 then
    local has = split(skills)
    for _, skill in ipairs(also) do
      if not contains(has, skill) then return nil end
    end
  end
  return skills
end

-- Widen the radius step by step; stop at the first step that holds anyone.
-- Within a step, look at the nearest few, and further only while all of
-- those were ineligible (stale, already tried, on a dead node).
local ids, dists, skills = {}, {}, {}
for radius in string.gmatch(o[O.radii] or opts.radii, '[^,]+') do
  local fetch, seen_hits = want_n * 2, 0
  repeat
    local hits = call('GEOSEARCH', free, 'FROMLONLAT', o[O.pickup_lng], o[O.pickup_lat],
                      'BYRADIUS', radius, 'm', 'ASC', 'COUNT', fetch, 'WITHDIST')
    for i = seen_hits + 1, #hits do
      if #ids < want_n then
        local has = eligible(hits[i][1])
        if has then
          ids[#ids + 1] = hits[i][1]
          dists[#dists + 1] = hits[i][2]
          skills[#skills + 1] = has
        end
      end
    end
    local saturated = #hits == fetch
    seen_hits, fetch = #hits, fetch * 4
  until #ids >= want_n or not saturated or fetch > 4096
  if #ids > 0 then break end
end
o[O.radii] = nil
-- the reply's own members: the candidates (skills: theirs, the order's were dropped above)
o.action, o.now, o.ids, o.dists, o.skills = 'search', now, ids, dists, skills
return reply(o)
