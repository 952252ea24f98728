-- A node is alive: record when (Redis time) in the node registry, and list
-- the nodes whose last heartbeat is older than ARGV[3] ms (dead). added is 1
-- when the node was not registered: new, or taken over as dead meanwhile.
-- KEYS: nodes.  ARGV: now, node, node ttl ms.
-- Reply (HeartbeatReply): now, added, the live nodes and the dead ones.
--- @include "call"
--- @include "clock"
--- @include "reply"
local nodes = KEYS[1]
local now, node = clock(ARGV[1]), ARGV[2]
local added = call('ZADD', nodes, now, node)
local cutoff = now - tonumber(ARGV[3])
return reply({
  now = now,
  added = added,
  live = call('ZRANGEBYSCORE', nodes, cutoff, '+inf'),
  dead = call('ZRANGEBYSCORE', nodes, '-inf', '(' .. cutoff),
})
