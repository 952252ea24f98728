--- @include "index_search"
--- @include "settle_ttl"
-- After a change of connection or position: both rules.
local function index_worker(wkey, wid)
  index_search(wkey, wid)
  settle_ttl(wkey)
end
