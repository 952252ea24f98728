-- Time: ARGV[1] of every script is '' (use Redis TIME: the one clock) or a pinned
-- time in ms (tests play races at fixed times).
local function clock(pinned)
  if pinned ~= nil and pinned ~= '' then return tonumber(pinned) end
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
