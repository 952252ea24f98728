--- @include "call"
--- @include "tally"
-- A worker answered (accepted or rejected, kind 'a' or 'j') the offer of okey:
-- counted, with how long it took since the offer was sent (osent).
local function tally_answer(okey, wid, now, kind)
  local prefix = city_prefix(okey)
  tally(prefix, wid, now, kind, PERF_FIGURE.count, 1)
  local sent = tonumber(call('HGET', okey, O.offer_sent) or '')
  if sent then tally(prefix, wid, now, kind, PERF_FIGURE.ms, math.max(0, now - sent)) end
end
