-- Claim up to ARGV[3] orders whose timer is due, leasing each until ARGV[2]
-- so that no other node's sweeper takes it; a node that dies mid-step loses
-- only its lease, and the order is claimed again when it runs out.
-- KEYS: timers.  ARGV: now, lease until, limit.
local due = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', ARGV[1], 'LIMIT', 0, ARGV[3])
for _, oid in ipairs(due) do redis.call('ZADD', KEYS[1], ARGV[2], oid) end
return due
