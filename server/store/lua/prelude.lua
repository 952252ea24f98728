-- Shared by every script. server/store/scripts.py puts the rendered rule
-- tables (ORDER_T, WORKER_T, NEEDS_NO_JOBS, REFUSAL, RECORDED, TERMINAL)
-- above this text, so the rules come from server/core and are written once.
--
-- Key layout (one hash tag per city, so one script touches one slot):
--   d:{city}:o:<order>        order hash          d:{city}:o:<order>:ev     event stream
--   d:{city}:o:<order>:tried  workers offered     d:{city}:w:<worker>       worker hash
--   d:{city}:geo / :seen      positions, last-seen d:{city}:timers          order -> due ms
-- Channels: d:node:<node> (frames for workers on that node), d:order:<order> (live order).

local function city_prefix(key)
  return string.match(key, '^(d:{[^}]*}:)')
end

local function split(s)
  local out = {}
  if not s or s == '' then return out end
  for item in string.gmatch(s, '[^,]+') do out[#out + 1] = item end
  return out
end

local function contains(list, value)
  for _, v in ipairs(list) do if v == value then return true end end
  return false
end

local function without(list, value)
  local out = {}
  for _, v in ipairs(list) do if v ~= value then out[#out + 1] = v end end
  return out
end

-- Frames for a worker go to the node holding its socket, with a header line
-- "<kind> <worker> <order>" that the node reads without decoding the frame.
local function send(wkey, wid, kind, oid, frame)
  local node = redis.call('HGET', wkey, 'node')
  if node and node ~= '' then
    redis.call('PUBLISH', 'd:node:' .. node, kind .. ' ' .. wid .. ' ' .. oid .. '\n' .. frame)
  end
end

local function withdraw(wkey, wid, oid, offer_id, reason)
  send(wkey, wid, 'withdrawn', oid, cjson.encode({
    type = 'offer_withdrawn', offer_id = offer_id, order_id = oid, reason = reason}))
end

-- Record an order event in its stream and tell whoever follows the order live.
local function emit(okey, oid, etype, state, now, extra)
  local fields = {'type', etype, 'at', now, 'state', state}
  local ev = {type = etype, at = tonumber(now), state = state}
  if extra then
    for _, name in ipairs({'worker', 'offer_id', 'reason'}) do
      if extra[name] then
        fields[#fields + 1] = name
        fields[#fields + 1] = extra[name]
        ev[name] = extra[name]
      end
    end
  end
  ev.id = redis.call('XADD', okey .. ':ev', '*', unpack(fields))
  redis.call('PUBLISH', 'd:order:' .. oid, cjson.encode({type = 'event', event = ev}))
end

-- Move an order along its table. Returns the new state, or nil if the table
-- has no such transition (the caller turns that into an error code).
local function order_step(okey, oid, event, now, extra)
  local state = redis.call('HGET', okey, 'state')
  local row = ORDER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  redis.call('HSET', okey, 'state', nxt)
  emit(okey, oid, RECORDED[event], nxt, now, extra)
  return nxt
end

-- Move a worker along its table; nil if not allowed.
local function worker_step(wkey, event)
  local state = redis.call('HGET', wkey, 'state') or 'offline'
  local row = WORKER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  redis.call('HSET', wkey, 'state', nxt)
  return nxt
end

-- A worker's offer ends (rejected, expired, taken, cancelled): back to available.
local function release(wkey, offer_id)
  if redis.call('HGET', wkey, 'offer') == offer_id then
    redis.call('HDEL', wkey, 'offer', 'offer_frame')
    worker_step(wkey, 'release')
  end
end

-- A worker's job ends (completed, cancelled): it has room again.
local function end_job(wkey, oid)
  local jobs = without(split(redis.call('HGET', wkey, 'jobs')), oid)
  redis.call('HSET', wkey, 'jobs', table.concat(jobs, ','))
  if redis.call('HGET', wkey, 'state') == 'on_job' then worker_step(wkey, 'free') end
end

-- Why an accept or reject of offer_id by wid cannot proceed, or nil if it can.
local function offer_refusal(okey, tried_key, offer_id, wid)
  local o = redis.call('HMGET', okey, 'state', 'offer', 'holders', 'worker')
  if not o[1] or redis.call('SISMEMBER', tried_key, wid) == 0 then return 'offer_not_found' end
  if o[1] == 'cancelled' then return 'order_cancelled' end
  if o[2] ~= offer_id then
    if o[4] and o[4] ~= wid then return 'offer_taken' end
    return 'offer_expired'
  end
  if not contains(split(o[3]), wid) then return 'offer_expired' end
  return nil
end
