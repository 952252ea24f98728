--- @include "declared"
-- Every command on a key goes through call: an undeclared key is an error.
local function call(command, key, ...)
  if not DECLARED[key] then error('undeclared key ' .. tostring(key) .. ' for ' .. command) end
  return redis.call(command, key, ...)
end
