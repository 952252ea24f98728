--- @include "reply"
local function refused(code)
  return reply({ok = 0, code = code})
end
