-- An operator holds a worker back from offers, or lets it go: pause (until a
-- time), resume, block, unblock, or block / unblock for one customer only. The
-- search skips a held worker (tick.lua); a blocked worker cannot connect
-- (connect.lua) and its socket is closed; jobs it holds carry on (an operator
-- reassigns them if need be). Recorded as a worker event with the operator.
-- KEYS: holds, worker, then the city's indexes and stream.
-- ARGV: now, worker id, action (pause, resume, block, unblock), actor id, how long
-- (ms, a pause: it lasts until now plus that), customer ('' for every customer), reason ('' for none).
-- Reply (HoldReply): ok 1, or ok 0 with not_held (nothing to lift).
local holds, wkey = KEYS[1], KEYS[2]
local now, wid, action, actor = clock(ARGV[1]), ARGV[2], ARGV[3], ARGV[4]
local customer, reason = ARGV[6], ARGV[7]
local field
if customer ~= '' then
  field = 'c:' .. customer .. ':' .. wid
elseif action == 'pause' or action == 'resume' then
  field = 'p:' .. wid
else
  field = 'b:' .. wid
end
local until_ms = nil
if action == 'pause' then
  until_ms = now + tonumber(ARGV[5])
  call('HSET', holds, field, until_ms)
elseif action == 'block' then
  call('HSET', holds, field, actor)
elseif call('HDEL', holds, field) == 0 then
  return refused('not_held')
end
local recorded = {pause = 'paused', resume = 'resumed', block = 'blocked', unblock = 'unblocked'}
local extra = {by = 'operator', actor = actor, ['until'] = until_ms}
if customer ~= '' then extra.customer = customer end
if reason ~= '' then extra.reason = reason end
worker_event(wkey, wid, recorded[action], now, extra)
if customer == '' and action ~= 'unblock' then
  local frame = {type = 'hold', hold = recorded[action], ['until'] = until_ms}
  if reason ~= '' then frame.reason = reason end
  send_to(wkey, wid, action == 'block' and 'blocked' or 'hold', '', cjson.encode(frame))
end
return reply({ok = 1})
