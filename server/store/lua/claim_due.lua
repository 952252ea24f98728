-- Claim up to ARGV[3] orders whose timer is due, leasing each for ARGV[2] ms
-- so that no other node's sweeper takes it; a node that dies mid-step loses
-- only its lease, and the order is claimed again when it runs out.
-- KEYS: timers.  ARGV: now, lease ms, limit.
-- Reply (ClaimReply): the claimed order ids.
--- @include "call"
--- @include "clock"
--- @include "reply"
local now = clock(ARGV[1])
local due = call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[3])
for _, oid in ipairs(due) do call('ZADD', KEYS[1], now + tonumber(ARGV[2]), oid) end
return reply({due = due})
