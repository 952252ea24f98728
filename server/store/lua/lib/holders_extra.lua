-- The event fields naming an offer's holders: 'worker' when there is one.
local function holders_extra(holders, extra)
  extra.workers = holders
  if #holders == 1 then extra.worker = holders[1] end
  return extra
end
