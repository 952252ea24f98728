--- @include "call"
local function leave_search(prefix, wid, skills)
  for _, skill in ipairs(skills) do call('ZREM', free_key(prefix, skill), wid) end
end
