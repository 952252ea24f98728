--- @include "call"
-- A hash's fields as a table (absent fields are nil).
local function hmap(key, names)
  local values = call('HMGET', key, unpack(names))
  local out = {}
  for i, name in ipairs(names) do
    if values[i] then out[name] = values[i] end
  end
  return out
end
