-- Shared by every script. server/store/scripts.py puts the rendered rule
-- tables above this text (ORDER_T, WORKER_T, TERMINAL, OFFER_OPEN, SEARCHING,
-- WORKING, CUSTOMER_CANCELS, RATEABLE, ANSWER_REFUSALS, RECORDED, CREATED_EVENT,
-- ORDER_INITIAL, WORKER_INITIAL, CANDIDATE, NEEDS_NO_JOBS, OFF_DUTY, REFUSAL), so
-- the rules come from server/core and are written once: no guard below names a state. A script gets the tables
-- and the helpers below that it uses (Redis runs all of a script's text on
-- every call); each helper is a "local function" with its comment above it.
--
-- Key layout (one hash tag per city, so one script touches one slot):
--   d:{city}:o:<order>        order hash          d:{city}:o:<order>:ev     event list (JSON)
--   d:{city}:o:<order>:tried  workers offered     d:{city}:w:<worker>       worker hash
--   d:{city}:free:<skill>     geo set: candidates  d:{city}:seen            worker -> last seen ms
--   d:{city}:pos              geo set: positions   d:{city}:fix_at          worker -> phone's time
--   d:{city}:timers           order -> due ms      d:{city}:node:<node>     workers on a node
--   d:{city}:online           connected worker -> '<node> <skills>'
--   d:{city}:events           stream: every order and worker event (webhooks read it)
--   d:{city}:perf:<worker>    per-day counters      d:{city}:ledger:<worker>  its newest earnings
--   d:{city}:book:<day>       the city's earnings that day, by worker, currency and reason
--   d:{city}:sched:<worker>   booked jobs accepted and not begun: order -> '<start> <end> <lat> <lng>'
--
-- Declared keys: a script touches only keys its caller names in KEYS (Redis
-- Cluster routes a script by them), through call(), which refuses any other.
-- A script that finds it needs keys its caller could not know (the holders of
-- an offer, a worker's skills) plans first: it want()s every key it will touch,
-- reading only declared ones, and before any write answers need with the keys
-- that were missing; the store calls it again with them (server/store/redis_store.py).
-- Channels, in the city's hash tag too: d:{city}:inbox:<node> (msgpack [kind,
-- worker, ref, frame] for that node's workers of the city), d:{city}:watch:<order>
-- (live order events, JSON). PUBLISH is 'SPUBLISH' on a Redis Cluster that has
-- sharded pub/sub (7.0 and newer), else 'PUBLISH' (server/store/scripts.py).
--
-- Time: ARGV[1] of every script is '' (use Redis TIME: the one clock) or a
-- pinned time in ms (tests play races at fixed times). Replies are flat
-- field/value lists, decoded into typed Structs by server/store/replies.py.

redis.replicate_commands()

local DECLARED = {}
for _, k in ipairs(KEYS) do DECLARED[k] = true end
local MISSING = {}

-- Every command on a key goes through call: an undeclared key is an error.
local function call(command, key, ...)
  if not DECLARED[key] then error('undeclared key ' .. tostring(key) .. ' for ' .. command) end
  return redis.call(command, key, ...)
end

-- Key k will be touched: noted when the caller did not declare it. Returns k.
local function want(k)
  if not DECLARED[k] then
    DECLARED[k] = false
    MISSING[#MISSING + 1] = k
  end
  return k
end

local function clock(pinned)
  if pinned ~= nil and pinned ~= '' then return tonumber(pinned) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end

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

-- A hash's fields as a table (absent fields are nil).
local function hmap(key, names)
  local values = call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    if values[i] then out[name] = values[i] end
  end
  return out
end

-- A reply: the table's fields as a flat field/value list.
local function reply(t)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k
    out[#out + 1] = v
  end
  return out
end

local function refused(code)
  return reply({ok = 0, code = code})
end

-- Frames for a worker go to the node holding its socket, in a msgpack
-- envelope that no id or frame content can split.
local function send(prefix, node, wid, kind, ref, frame)
  if node and node ~= '' then
    redis.call(PUBLISH, prefix .. 'inbox:' .. node, cmsgpack.pack({kind, wid, ref, frame}))
  end
end

local function send_to(wkey, wid, kind, ref, frame)
  send(city_prefix(wkey), call('HGET', wkey, 'node'), wid, kind, ref, frame)
end

local function withdraw(wkey, wid, oid, offer_id, reason)
  send_to(wkey, wid, 'withdrawn', oid, cjson.encode({
    type = 'offer_withdrawn', offer_id = offer_id, order_id = oid, reason = reason}))
end

-- A worker is in free:<skill> for each of its skills exactly when it is
-- connected, in a CANDIDATE state and has a known position (in pos and seen;
-- forget_stale drops stale ones). Location reports move it there with
-- GEOADD XX, and the node calls index.lua for a first position, so the rule
-- holds through reports too. index_search applies the rule to one worker. A
-- worker that is not connected is in no search index (disconnect and takeover
-- take it out with leave_search), so there is nothing to do for it.
local function index_search(wkey, wid)
  local w = hmap(wkey, {'state', 'skills', 'node'})
  if not w.node or w.node == '' then return end
  local prefix = city_prefix(wkey)
  local where = nil
  if CANDIDATE[w.state or WORKER_INITIAL] and call('ZSCORE', prefix .. 'seen', wid) then
    where = call('GEOPOS', prefix .. 'pos', wid)[1]
  end
  for _, skill in ipairs(split(w.skills)) do
    if where then
      call('GEOADD', prefix .. 'free:' .. skill, where[1], where[2], wid)
    else
      call('ZREM', prefix .. 'free:' .. skill, wid)
    end
  end
end

local function leave_search(prefix, wid, skills)
  for _, skill in ipairs(skills) do call('ZREM', prefix .. 'free:' .. skill, wid) end
end

-- The online index: '<node> <skills>' of each connected worker, kept with the
-- worker's record by connect, disconnect and takeover. Scripts plan from it
-- (a worker's skills name the keys a change to it touches) and the search
-- checks a candidate's node with it. Returns the node (nil when not
-- connected) and the skills as a comma list.
local function online(prefix, wid)
  local entry = call('HGET', prefix .. 'online', wid)
  if not entry then return nil, '' end
  return string.match(entry, '^(%S+) (%S*)$')
end

-- Plan a change to worker wid: its record, the city's indexes and event stream,
-- and the search index of each of its skills when it is connected.
local function plan_worker(prefix, wid)
  want(prefix .. 'w:' .. wid)
  want(prefix .. 'perf:' .. wid)
  want(prefix .. 'sched:' .. wid)
  for _, name in ipairs({'online', 'seen', 'pos', 'events'}) do want(prefix .. name) end
  if DECLARED[prefix .. 'online'] then
    local _, skills = online(prefix, wid)
    for _, skill in ipairs(split(skills)) do want(prefix .. 'free:' .. skill) end
  end
end

-- Plan a change to an order: its record, history, tried set, the city's timers
-- and event stream.
local function plan_order(okey)
  local prefix = city_prefix(okey)
  for _, k in ipairs({okey, okey .. ':ev', okey .. ':tried', prefix .. 'timers',
                      prefix .. 'events'}) do
    want(k)
  end
end

-- Plan a change to the holders of okey's offer (read from the declared order).
local function plan_holders(okey)
  local prefix = city_prefix(okey)
  for _, wid in ipairs(split(call('HGET', okey, 'holders'))) do plan_worker(prefix, wid) end
end

-- Plan a change to whoever has order o (state, holders, worker read from okey):
-- the holders of its open offer, or its worker.
local function plan_takers(okey, o)
  if OFFER_OPEN[o.state] then
    plan_holders(okey)
  elseif o.worker then
    plan_worker(city_prefix(okey), o.worker)
  end
end

-- After planning: the reply asking for the keys that were missing, or nil.
local function needs()
  if #MISSING > 0 then return reply({need = MISSING}) end
  return nil
end

-- A worker's record ends after its retention once it is disconnected and holds
-- nothing; while it is connected or holds an offer or a job, it stays.
local function settle_ttl(wkey)
  local w = hmap(wkey, {'node', 'keep', 'jobs', 'offer'})
  if (w.node and w.node ~= '') or (w.jobs and w.jobs ~= '') or w.offer then
    call('PERSIST', wkey)
  elseif w.keep then
    call('PEXPIRE', wkey, w.keep)
  end
end

-- After a change of connection or position: both rules.
local function index_worker(wkey, wid)
  index_search(wkey, wid)
  settle_ttl(wkey)
end

-- Forget where a worker was (its report is too old, or it is gone for good).
local function forget_position(prefix, wid)
  call('ZREM', prefix .. 'seen', wid)
  call('ZREM', prefix .. 'pos', wid)
  call('ZREM', prefix .. 'fix_at', wid)
end

-- Count figure kind:figure of worker wid for the day of now (a day is 86400000 ms
-- of Redis time) in its performance counters, d:{city}:perf:<worker> (one field
-- '<kind>:<day>:<figure>' each; server/store/performance.py reads them). The
-- first count of a day drops the days older than PERF_DAYS, and the hash ends
-- PERF_DAYS after its last count, so it stays bounded and ends.
local function tally(prefix, wid, now, kind, figure, by)
  local perf = prefix .. 'perf:' .. wid
  local day = math.floor(now / 86400000)
  if call('HGET', perf, 'day') ~= tostring(day) then
    for _, field in ipairs(call('HKEYS', perf)) do
      local at = tonumber(string.match(field, '^%a+:(%d+):'))
      if at and at <= day - PERF_DAYS then call('HDEL', perf, field) end
    end
    call('HSET', perf, 'day', day)
  end
  call('HINCRBY', perf, kind .. ':' .. day .. ':' .. figure, by)
  call('PEXPIRE', perf, PERF_DAYS * 86400000)
end

-- A worker answered (accepted or rejected, kind 'a' or 'j') the offer of okey:
-- counted, with how long it took since the offer was sent (osent).
local function tally_answer(okey, wid, now, kind)
  local prefix = city_prefix(okey)
  tally(prefix, wid, now, kind, 'n', 1)
  local sent = tonumber(call('HGET', okey, 'osent') or '')
  if sent then tally(prefix, wid, now, kind, 'ms', math.max(0, now - sent)) end
end

-- Append an event to the city's stream, which consumers read in groups (the
-- webhook deliveries): kind 'order' or 'worker', the event as JSON, its order
-- and category. Trimmed by time in the same step: entries older than
-- STREAM_KEEP_MS go (MINID, approximately, by Redis's own clock: a test's pinned
-- time never trims), and a quiet city's stream expires after as long.
local function stream_event(prefix, kind, json, order, category)
  local key = prefix .. 'events'
  local t = redis.call('TIME')
  local real_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  call('XADD', key, 'MINID', '~', real_now - STREAM_KEEP_MS, '*', 'k', kind, 'e', json,
       'o', order or '', 'c', category or '')
  call('PEXPIRE', key, STREAM_KEEP_MS)
end

-- A worker event on the city's stream: connected, disconnected, status.
local function worker_event(wkey, wid, etype, now, extra)
  local ev = {type = etype, at = now, worker = wid, state = call('HGET', wkey, 'state')}
  for k, v in pairs(extra or {}) do ev[k] = v end
  stream_event(city_prefix(wkey), 'worker', cjson.encode(ev), nil, nil)
end

-- Plan paying worker wid at now (pay): its ledger, the city's day book of now's
-- day, its record and counters, and the city's event stream.
local function plan_pay(prefix, wid, now)
  for _, name in ipairs({'ledger:' .. wid, 'book:' .. math.floor(now / 86400000),
                         'perf:' .. wid, 'w:' .. wid, 'events'}) do
    want(prefix .. name)
  end
end

-- Pay worker wid for order okey (oid): each line {reason, amount} (minor units of
-- currency) once per order and reason, and a completed job (job true) counted
-- once; the order's 'paid' lists what was paid, so a step done again never pays
-- twice. An entry goes into the worker's ledger (d:{city}:ledger:<worker>: its
-- newest LEDGER_KEEP entries, JSON), the city's day book (d:{city}:book:<day>:
-- '<worker>:<currency>:<reason>' -> sum, and '...:jobs') and the worker's per-day
-- counters ('e:<day>:<currency>:<reason>'), and is a worker event 'earned' on the
-- city's stream. The ledger and the book end LEDGER_DAYS after their last entry.
local function pay(okey, oid, wid, currency, lines, job, now)
  local prefix = city_prefix(okey)
  local paid = split(call('HGET', okey, 'paid'))
  local ledger = prefix .. 'ledger:' .. wid
  local book = prefix .. 'book:' .. math.floor(now / 86400000)
  local function count(reason, amount)
    call('HINCRBY', book, wid .. ':' .. currency .. ':' .. reason, amount)
    tally(prefix, wid, now, 'e', currency .. ':' .. reason, amount)
  end
  if job and not contains(paid, 'job') then
    count('jobs', 1)
    paid[#paid + 1] = 'job'
  end
  for _, line in ipairs(lines) do
    local reason, amount = line[1], line[2]
    if amount > 0 and not contains(paid, reason) then
      count(reason, amount)
      paid[#paid + 1] = reason
      call('LPUSH', ledger, cjson.encode({order_id = oid, reason = reason, amount = amount,
                                          currency = currency, at = now}))
      worker_event(prefix .. 'w:' .. wid, wid, 'earned', now, {
        order_id = oid, reason = reason, amount = amount, currency = currency})
    end
  end
  call('HSET', okey, 'paid', table.concat(paid, ','))
  call('LTRIM', ledger, 0, LEDGER_KEEP - 1)
  call('PEXPIRE', ledger, LEDGER_DAYS * 86400000)
  call('PEXPIRE', book, LEDGER_DAYS * 86400000)
end

-- Lines to pay as the caller sends them: 'reason=amount,...' ('' for none).
local function pay_lines(text)
  local lines = {}
  for reason, amount in string.gmatch(text or '', '([%a_]+)=(%d+)') do
    lines[#lines + 1] = {reason, tonumber(amount)}
  end
  return lines
end

-- Lines to pay with a completed job's time part added: per_minute (minor units)
-- for each minute from its accept ('acc', the assigned event's at) to now, the
-- completed event's at, so the history gives it again exactly; rounded half up
-- as server/core/earnings.py rounds every part, and left out when 0.
local function with_time_pay(lines, okey, per_minute, now)
  local accepted = tonumber(call('HGET', okey, 'acc') or '')
  if not accepted then return lines end
  local amount = math.floor(per_minute * math.max(0, now - accepted) / MINUTE_MS + 0.5)
  if amount > 0 then lines[#lines + 1] = {TIME_PAY, amount} end
  return lines
end

-- Record an order event in its history, with the order's state after it, tell
-- whoever follows the order live, and append it to the city's stream. The history is a list of the events as
-- JSON (a stream costs a 4 KB node per order). An event's id is "<ms>-<n>": n
-- counts the order's events from 0, and ms never goes back within an order
-- (the hash keeps the last id in 'ev'), so ids sort as the events happened.
-- extra: worker, workers (a list), offer_id, reason, and for a workflow step by,
-- actor, data (a table), next_step, due_at, fee.
local function emit(okey, oid, etype, state, now, extra)
  local ev = {type = etype, at = now, state = state}
  if extra then
    for _, name in ipairs({'worker', 'offer_id', 'reason', 'by', 'actor', 'data', 'next_step',
                           'due_at', 'fee'}) do
      if extra[name] then ev[name] = extra[name] end
    end
    if extra.workers and #extra.workers > 0 then ev.workers = extra.workers end
  end
  local ms, n = now, 0
  local last_ms, last_n = string.match(call('HGET', okey, 'ev') or '', '^(%d+)-(%d+)$')
  if last_ms then ms, n = math.max(now, tonumber(last_ms)), tonumber(last_n) + 1 end
  ev.id = string.format('%d-%d', ms, n)
  call('HSET', okey, 'state', state, 'ev', ev.id)
  local json = cjson.encode(ev)
  call('RPUSH', okey .. ':ev', json)
  redis.call(PUBLISH, city_prefix(okey) .. 'watch:' .. oid,
             '{"type":"event","event":' .. json .. '}')
  stream_event(city_prefix(okey), 'order', json, oid, call('HGET', okey, 'cat'))
end

-- Move an order along its table. Returns the new state, or nil if the table
-- has no such transition (the caller turns that into an error code). The
-- event is recorded under its past-tense name, or extra.type (a workflow
-- step's own name). An
-- order that ends keeps its record and history for its retention, then its
-- keys expire: set here, in the step that ends it.
local function order_step(okey, oid, event, now, extra)
  local state = call('HGET', okey, 'state')
  local row = ORDER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  emit(okey, oid, (extra and extra.type) or RECORDED[event], nxt, now, extra)
  if TERMINAL[nxt] then
    local keep = call('HGET', okey, 'keep')
    for _, key in ipairs({okey, okey .. ':ev', okey .. ':tried'}) do
      call('PEXPIRE', key, keep)
    end
  end
  return nxt
end

-- Move a worker along its table, keeping its index in step (when it enters or
-- leaves a CANDIDATE state); nil if not allowed.
local function worker_step(wkey, wid, event)
  local state = call('HGET', wkey, 'state') or WORKER_INITIAL
  local row = WORKER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  call('HSET', wkey, 'state', nxt)
  if CANDIDATE[state] ~= CANDIDATE[nxt] then index_search(wkey, wid) end
  return nxt
end

-- How much of a worker's capacity a job of this order uses (its category's
-- dispatch policy pinned it as 'units'; 1 for an order by bare skill).
local function units_of(okey)
  return tonumber(call('HGET', okey, 'units') or '1')
end

-- The capacity units a worker's jobs use ('load'; a record from before units
-- counted one per job).
local function load_of(wkey)
  local load = tonumber(call('HGET', wkey, 'load') or '')
  return load or #split(call('HGET', wkey, 'jobs'))
end

-- A job of order okey (oid) becomes one of worker wkey's jobs, using its units of
-- the worker's capacity. Returns whether the worker still has room for more.
local function add_job(wkey, okey, oid)
  local jobs = split(call('HGET', wkey, 'jobs'))
  jobs[#jobs + 1] = oid
  local load = load_of(wkey) + units_of(okey)
  call('HSET', wkey, 'jobs', table.concat(jobs, ','), 'load', load)
  return load < tonumber(call('HGET', wkey, 'capacity') or '1')
end

-- The workflow's first step is due from now: its timer starts when it has one
-- (wtms, pinned at creation for an approval or a system step); else the order
-- waits on no timer.
local function start_workflow(okey, timers, oid, now, wtms)
  local timer = tonumber(wtms or '')
  if timer then
    call('HSET', okey, 'wdue', now + timer)
    call('ZADD', timers, now + timer, oid)
  else
    call('ZREM', timers, oid)
  end
end

-- A worker's offer ends (rejected, expired, taken, cancelled, lost): back to
-- available, or on a job if a booked job that began meanwhile fills its capacity.
local function release(wkey, wid, offer_id)
  if call('HGET', wkey, 'offer') == offer_id then
    call('HDEL', wkey, 'offer', 'offer_frame', 'odist')
    worker_step(wkey, wid, 'release')
    if load_of(wkey) >= tonumber(call('HGET', wkey, 'capacity') or '1') then
      worker_step(wkey, wid, 'take')
    end
    settle_ttl(wkey)
  end
end

-- A worker's job ends (completed, cancelled, taken back): it has room again. A
-- booked job that has not begun leaves the worker's schedule only.
-- The order's record (d:{city}:o:<order>) is declared by every caller.
local function end_job(wkey, wid, oid)
  local prefix = city_prefix(wkey)
  local okey = prefix .. 'o:' .. oid
  if call('HGET', okey, 'sls') then call('HDEL', prefix .. 'sched:' .. wid, oid) end
  local jobs = split(call('HGET', wkey, 'jobs'))
  if not contains(jobs, oid) then return end
  jobs = without(jobs, oid)
  local load = math.max(0, load_of(wkey) - units_of(okey))
  call('HSET', wkey, 'jobs', table.concat(jobs, ','), 'load', #jobs > 0 and load or 0)
  worker_step(wkey, wid, 'free')
  settle_ttl(wkey)
end

-- Take order o (state, offer, holders, worker) from whoever has it: its open offer
-- is withdrawn from each holder ('cancelled') and released, or its worker's job
-- ends, the worker told with job_cancelled and reason tell (nil: not told).
-- Returns the workers it was taken from.
local function take_from(okey, oid, o, tell)
  local prefix, from = city_prefix(okey), {}
  if OFFER_OPEN[o.state] then
    for _, wid in ipairs(split(o.holders)) do
      local wkey = prefix .. 'w:' .. wid
      release(wkey, wid, o.offer)
      withdraw(wkey, wid, oid, o.offer, 'cancelled')
      from[#from + 1] = wid
    end
    call('HDEL', okey, 'offer', 'holders', 'exp')
  elseif o.worker then
    local wkey = prefix .. 'w:' .. o.worker
    end_job(wkey, o.worker, oid)
    if tell then
      send_to(wkey, o.worker, 'cancelled', oid,
              cjson.encode({type = 'job_cancelled', order_id = oid, reason = tell}))
    end
    from[1] = o.worker
  end
  return from
end

-- Take order o (state, offer, holders, worker) from whoever has it (told with
-- reason tell, nil: not told) and dispatch it again from now: none of them is ever
-- offered it again (its tried set), its workflow starts over at step first ('' for
-- an order by bare skill) and a booking begins anew with its next worker; recorded
-- 'reassigned' with extra (by, actor, reason) and the workers it was taken from,
-- and due again after lease ms. Returns the order's state and those workers.
local function redispatch(okey, oid, o, tell, first, lease, now, extra)
  local from = take_from(okey, oid, o, tell)
  for _, wid in ipairs(from) do call('SADD', okey .. ':tried', wid) end
  call('HDEL', okey, 'worker', 'wdue', 'wdone', 'bdue', 'bact')
  if first ~= '' then call('HSET', okey, 'wstep', first) else call('HDEL', okey, 'wstep') end
  call('HSET', okey, 'dfrom', now)
  extra.workers = from
  local state = order_step(okey, oid, 'reassign', now, extra)
  call('ZADD', city_prefix(okey) .. 'timers', now + lease, oid)
  return state, from
end

-- The event fields naming an offer's holders: 'worker' when there is one.
local function holders_extra(holders, extra)
  extra.workers = holders
  if #holders == 1 then extra.worker = holders[1] end
  return extra
end

-- Why an accept or reject of offer_id by wid cannot proceed at now, or nil if it can.
local function offer_refusal(okey, tried_key, offer_id, wid, now)
  local o = hmap(okey, {'state', 'offer', 'holders', 'worker', 'exp'})
  if not o.state or call('SISMEMBER', tried_key, wid) == 0 then return 'offer_not_found' end
  if ANSWER_REFUSALS[o.state] then return ANSWER_REFUSALS[o.state] end
  if o.offer ~= offer_id then
    if o.worker and o.worker ~= wid then return 'offer_taken' end
    return 'offer_expired'
  end
  if not contains(split(o.holders), wid) or now >= tonumber(o.exp) then return 'offer_expired' end
  return nil
end

-- The offer of okey ends for every holder (expired) and the order goes back
-- to searching; each holder that still has it is told.
local function expire_offer(okey, oid, now)
  local o = hmap(okey, {'offer', 'holders'})
  local prefix = city_prefix(okey)
  local holders = split(o.holders)
  for _, wid in ipairs(holders) do
    local wkey = prefix .. 'w:' .. wid
    if call('HGET', wkey, 'offer') == o.offer then
      release(wkey, wid, o.offer)
      withdraw(wkey, wid, oid, o.offer, 'expired')
      tally(prefix, wid, now, 'x', 'n', 1)
    end
  end
  call('HDEL', okey, 'offer', 'holders', 'exp')
  order_step(okey, oid, 'expire', now, holders_extra(holders, {offer_id = o.offer}))
end

-- One holder of the open offer is gone without answering (its node died): it
-- loses the offer; the order is declined by it, or back to searching at once
-- when nobody else holds the offer.
local function lose_holder(okey, oid, wkey, wid, offer_id, now)
  release(wkey, wid, offer_id)
  if call('HGET', okey, 'offer') ~= offer_id then return end
  local holders = without(split(call('HGET', okey, 'holders')), wid)
  local extra = {worker = wid, offer_id = offer_id, reason = 'worker_lost'}
  if #holders > 0 then
    call('HSET', okey, 'holders', table.concat(holders, ','))
    order_step(okey, oid, 'decline', now, extra)
    return
  end
  call('HDEL', okey, 'offer', 'holders', 'exp')
  extra.workers = {wid}
  order_step(okey, oid, 'expire', now, extra)
  call('ZADD', city_prefix(okey) .. 'timers', now, oid)
end
