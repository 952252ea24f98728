--- @include "call"
--- @include "emit"
-- Move an order along its table. Returns the new state, or nil if the table
-- has no such transition (the caller turns that into an error code). The
-- event is recorded under its past-tense name, or extra.type (a workflow
-- step's own name). An
-- order that ends keeps its record and history for its retention, then its
-- keys expire: set here, in the step that ends it.
local function order_step(okey, oid, event, now, extra)
  local state = call('HGET', okey, O.state)
  local row = ORDER_T[state]
  local nxt = row and row[event]
  if not nxt then return nil end
  emit(okey, oid, (extra and extra.type) or RECORDED[event], nxt, now, extra)
  if TERMINAL[nxt] then
    local keep = call('HGET', okey, O.keep_ms)
    for _, key in ipairs({okey, history_key(okey), tried_key(okey)}) do
      call('PEXPIRE', key, keep)
    end
  end
  return nxt
end
