--- @include "call"
-- The online index: '<node> <skills>' of each connected worker, kept with the
-- worker's record by connect, disconnect and takeover. Scripts plan from it
-- (a worker's skills name the keys a change to it touches) and the search
-- checks a candidate's node with it. Returns the node (nil when not
-- connected) and the skills as a comma list.
local function online(prefix, wid)
  local entry = call('HGET', online_key(prefix), wid)
  if not entry then return nil, '' end
  return string.match(entry, '^(%S+) (%S*)$')
end
