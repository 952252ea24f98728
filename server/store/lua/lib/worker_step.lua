--- @include "call"
--- @include "index_search"
-- Move a worker along its table, keeping its index in step (when it enters or
-- leaves a CANDIDATE state); nil if not allowed.
local function worker_step(wkey, wid, event)
  local state = call('HGET', wkey, W.state) or WORKER_INITIAL
  local row = WORKER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  call('HSET', wkey, W.state, nxt)
  if CANDIDATE[state] ~= CANDIDATE[nxt] then index_search(wkey, wid) end
  return nxt
end
