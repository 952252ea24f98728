--- @include "call"
-- Count figure kind:figure of worker wid for the day of now (a day is 86400000 ms
-- of Redis time) in its performance counters, d:{city}:perf:<worker> (one field
-- '<kind>:<day>:<figure>' each; server/store/performance.py reads them). The
-- first count of a day drops the days older than PERF_DAYS, and the hash ends
-- PERF_DAYS after its last count, so it stays bounded and ends.
local function tally(prefix, wid, now, kind, figure, by)
  local perf = perf_key(prefix, wid)
  local day = math.floor(now / 86400000)
  if call('HGET', perf, P.day) ~= tostring(day) then
    for _, field in ipairs(call('HKEYS', perf)) do
      local at = tonumber(string.match(field, '^%a+:(%d+):'))
      if at and at <= day - PERF_DAYS then call('HDEL', perf, field) end
    end
    call('HSET', perf, P.day, day)
  end
  call('HINCRBY', perf, kind .. ':' .. day .. ':' .. figure, by)
  call('PEXPIRE', perf, PERF_DAYS * 86400000)
end
