-- Drop positions not refreshed since ARGV[1] from a city's geo set (at most
-- ARGV[2] of them), so the nearest-N search does not fill up with workers
-- that stopped reporting. Search already ignores them; this keeps it fast.
-- KEYS: geo, seen.  ARGV: stale before (ms), limit.  Returns how many were dropped.
local stale = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', '(' .. ARGV[1], 'LIMIT', 0, ARGV[2])
if #stale == 0 then return 0 end
redis.call('ZREM', KEYS[1], unpack(stale))
redis.call('ZREM', KEYS[2], unpack(stale))
return #stale
