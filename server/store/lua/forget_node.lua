-- Drop a dead node from the registry, unless it beat again since it was judged
-- dead (a node restarted under its id re-registers; a survivor that judged the old
-- incarnation must not drop the new one).
-- KEYS: the node registry.  ARGV: now, node, judged dead before (ms).
-- Reply (DoneReply): done 1 when it was dropped.
--- @include "call"
--- @include "reply"
local nodes = KEYS[1]
local score = call('ZSCORE', nodes, ARGV[2])
if score and tonumber(score) < tonumber(ARGV[3]) then
  call('ZREM', nodes, ARGV[2])
  return reply({done = 1})
end
return reply({done = 0})
