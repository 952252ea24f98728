--- @include "declared"
-- Key k will be touched: noted when the caller did not declare it. Returns k.
local function want(k)
  if not DECLARED[k] then
    DECLARED[k] = false
    MISSING[#MISSING + 1] = k
  end
  return k
end
