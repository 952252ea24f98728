--- @include "call"
--- @include "stream_event"
-- Record an order event in its history, with the order's state after it, tell
-- whoever follows the order live, and append it to the city's stream. The history
-- is a list of the events as
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
  local last_ms, last_n = string.match(call('HGET', okey, O.last_event) or '', '^(%d+)-(%d+)$')
  if last_ms then ms, n = math.max(now, tonumber(last_ms)), tonumber(last_n) + 1 end
  ev.id = string.format('%d-%d', ms, n)
  call('HSET', okey, O.state, state, O.last_event, ev.id)
  local json = cjson.encode(ev)
  call('RPUSH', history_key(okey), json)
  redis.call(PUBLISH, watch_channel(city_prefix(okey), oid),
             '{"type":"event","event":' .. json .. '}')
  stream_event(city_prefix(okey), 'order', json, oid, call('HGET', okey, O.category))
end
