--- @include "call"
--- @include "send"
local function send_to(wkey, wid, kind, ref, frame)
  send(city_prefix(wkey), call('HGET', wkey, W.node), wid, kind, ref, frame)
end
