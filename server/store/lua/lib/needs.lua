--- @include "declared"
--- @include "reply"
-- After planning: the reply asking for the keys that were missing, or nil.
local function needs()
  if #MISSING > 0 then return reply({need = MISSING}) end
  return nil
end
