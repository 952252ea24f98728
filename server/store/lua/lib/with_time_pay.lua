--- @include "call"
-- Lines to pay with a completed job's time part added: per_minute (minor units)
-- for each minute from its accept ('acc', the assigned event's at) to now, the
-- completed event's at, so the history gives it again exactly; rounded half up
-- as server/core/earnings.py rounds every part, and left out when 0.
local function with_time_pay(lines, okey, per_minute, now)
  local accepted = tonumber(call('HGET', okey, O.accepted) or '')
  if not accepted then return lines end
  local amount = math.floor(per_minute * math.max(0, now - accepted) / MINUTE_MS + 0.5)
  if amount > 0 then lines[#lines + 1] = {TIME_PAY, amount} end
  return lines
end
