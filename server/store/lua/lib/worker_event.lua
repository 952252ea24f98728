--- @include "call"
--- @include "stream_event"
-- A worker event on the city's stream: connected, disconnected, status.
local function worker_event(wkey, wid, etype, now, extra)
  local ev = {type = etype, at = now, worker = wid, state = call('HGET', wkey, W.state)}
  for k, v in pairs(extra or {}) do ev[k] = v end
  stream_event(city_prefix(wkey), 'worker', cjson.encode(ev), nil, nil)
end
