-- Frames for a worker go to the node holding its socket, in a msgpack
-- envelope that no id or frame content can split.
local function send(prefix, node, wid, kind, ref, frame)
  if node and node ~= '' then
    redis.call(PUBLISH, inbox_channel(prefix, node), cmsgpack.pack({kind, wid, ref, frame}))
  end
end
