--- @include "call"
--- @include "split"
-- The capacity units a worker's jobs use ('load'; a record from before units
-- counted one per job).
local function load_of(wkey)
  local load = tonumber(call('HGET', wkey, W.load) or '')
  return load or #split(call('HGET', wkey, W.jobs))
end
