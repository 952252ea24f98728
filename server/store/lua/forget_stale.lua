-- Forget the positions of workers not seen for longer than ARGV[2] ms (at most
-- ARGV[3] of them) and take them out of the search index, so the nearest-N
-- search does not fill up with workers that stopped reporting (search already
-- skips them; this keeps it fast) and no position outlives its worker. A
-- forgotten worker comes back with its next location report.
-- KEYS: seen, then the rest it plans (the city's indexes, fix_at, each stale
-- worker's record and the search index of its skills).  ARGV: now, max age ms, limit.
-- Reply (CountReply): how many were forgotten; or need.
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "reply"
--- @include "plan_worker"
--- @include "needs"
--- @include "index_worker"
--- @include "forget_position"
local seen = KEYS[1]
local now = clock(ARGV[1])
local stale = call('ZRANGEBYSCORE', seen, '-inf', '(' .. (now - tonumber(ARGV[2])),
                   'LIMIT', 0, ARGV[3])
local prefix = city_prefix(seen)
if #stale > 0 then want(fix_at_key(prefix)) end
for _, wid in ipairs(stale) do plan_worker(prefix, wid) end
local need = needs()
if need then return need end
for _, wid in ipairs(stale) do
  forget_position(prefix, wid)
  local wkey = worker_key(prefix, wid)
  if call('EXISTS', wkey) == 1 then index_worker(wkey, wid) end
end
return reply({count = #stale})
