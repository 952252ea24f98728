-- Take one token from a rate limit (GCRA: ARGV[2] tokens per second, bursts
-- of ARGV[3]). The key ends when the bucket is full again.
-- KEYS: bucket.  ARGV: now, rate per second, burst.
-- Reply (RateReply): allowed 1, or allowed 0 with how long to wait (ms).
--- @include "call"
--- @include "clock"
--- @include "reply"
local key = KEYS[1]
local now = clock(ARGV[1])
local interval = 1000 / tonumber(ARGV[2])
local tolerance = interval * tonumber(ARGV[3])
local tat = math.max(tonumber(call('GET', key) or '0'), now) + interval
if tat - now > tolerance then
  return reply({allowed = 0, retry_ms = math.ceil(tat - now - tolerance)})
end
call('SET', key, math.ceil(tat), 'PX', math.ceil(tat - now))
return reply({allowed = 1})
