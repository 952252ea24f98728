-- An operator holds a worker back from offers, or lets it go: pause (until a
-- time), resume, block, unblock, or block / unblock for one customer only. The
-- search skips a held worker (tick.lua); a blocked worker cannot connect
-- (connect.lua) and its socket is closed; jobs it holds carry on (an operator
-- reassigns them if need be). Recorded as a worker event with the operator.
-- KEYS: holds, worker, then the city's indexes and stream.
-- ARGV: now, then opts (HoldArgs, server/store/arguments.py): worker_id, action
-- (HOLD_ACTION: pause, resume, block, unblock), actor, for_ms (a pause lasts until
-- now plus that), customer ('' for every customer), reason ('' for none).
-- Reply (HoldReply): ok 1, or ok 0 with not_held (nothing to lift).
--- @include "call"
--- @include "clock"
--- @include "reply"
--- @include "refused"
--- @include "send_to"
--- @include "worker_event"
local holds, wkey = KEYS[1], KEYS[2]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local wid, action, actor = opts.worker_id, opts.action, opts.actor
local customer, reason = opts.customer, opts.reason
local field
if customer ~= '' then
  field = blocked_for_field(customer, wid)
elseif action == HOLD_ACTION.pause or action == HOLD_ACTION.resume then
  field = paused_field(wid)
else
  field = blocked_field(wid)
end
local until_ms = nil
if action == HOLD_ACTION.pause then
  until_ms = now + opts.for_ms
  call('HSET', holds, field, until_ms)
elseif action == HOLD_ACTION.block then
  call('HSET', holds, field, actor)
elseif call('HDEL', holds, field) == 0 then
  return refused('not_held')
end
local extra = {by = 'operator', actor = actor, ['until'] = until_ms}
if customer ~= '' then extra.customer = customer end
if reason ~= '' then extra.reason = reason end
worker_event(wkey, wid, HOLD_RECORDED[action], now, extra)
if customer == '' and action ~= HOLD_ACTION.unblock then
  local frame = {type = 'hold', hold = HOLD_RECORDED[action], ['until'] = until_ms}
  if reason ~= '' then frame.reason = reason end
  send_to(wkey, wid, action == HOLD_ACTION.block and 'blocked' or 'hold', '', cjson.encode(frame))
end
return reply({ok = 1})
