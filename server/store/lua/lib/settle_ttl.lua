--- @include "call"
--- @include "hmap"
-- A worker's record ends after its retention once it is disconnected and holds
-- nothing; while it is connected or holds an offer or a job, it stays.
local function settle_ttl(wkey)
  local w = hmap(wkey, {W.node, W.keep_ms, W.jobs, W.offer})
  if (w[W.node] and w[W.node] ~= '') or (w[W.jobs] and w[W.jobs] ~= '') or w[W.offer] then
    call('PERSIST', wkey)
  elseif w[W.keep_ms] then
    call('PEXPIRE', wkey, w[W.keep_ms])
  end
end
