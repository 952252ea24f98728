--- @include "call"
-- Forget where a worker was (its report is too old, or it is gone for good).
local function forget_position(prefix, wid)
  call('ZREM', seen_key(prefix), wid)
  call('ZREM', pos_key(prefix), wid)
  call('ZREM', fix_at_key(prefix), wid)
end
