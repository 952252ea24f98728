--- @include "call"
-- Append an event to the city's stream, which consumers read in groups (the
-- webhook deliveries): kind 'order' or 'worker', the event as JSON, its order
-- and category. Trimmed by time in the same step: entries older than
-- STREAM_KEEP_MS go (MINID, approximately, by Redis's own clock: a test's pinned
-- time never trims), and a quiet city's stream expires after as long.
local function stream_event(prefix, kind, json, order, category)
  local key = stream_key(prefix)
  local t = redis.call('TIME')
  local real_now = tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
  call('XADD', key, 'MINID', '~', real_now - STREAM_KEEP_MS, '*', 'k', kind, 'e', json,
       'o', order or '', 'c', category or '')
  call('PEXPIRE', key, STREAM_KEEP_MS)
end
