--- @include "call"
--- @include "split"
--- @include "hmap"
-- A worker is in free:<skill> for each of its skills exactly when it is
-- connected, in a CANDIDATE state and has a known position (in pos and seen;
-- forget_stale drops stale ones). Location reports move it there with
-- GEOADD XX, and the node calls index.lua for a first position, so the rule
-- holds through reports too. index_search applies the rule to one worker. A
-- worker that is not connected is in no search index (disconnect and takeover
-- take it out with leave_search), so there is nothing to do for it.
local function index_search(wkey, wid)
  local w = hmap(wkey, {W.state, W.skills, W.node})
  if not w[W.node] or w[W.node] == '' then return end
  local prefix = city_prefix(wkey)
  local where = nil
  if CANDIDATE[w[W.state] or WORKER_INITIAL] and call('ZSCORE', seen_key(prefix), wid) then
    where = call('GEOPOS', pos_key(prefix), wid)[1]
  end
  for _, skill in ipairs(split(w[W.skills])) do
    if where then
      call('GEOADD', free_key(prefix, skill), where[1], where[2], wid)
    else
      call('ZREM', free_key(prefix, skill), wid)
    end
  end
end
