-- A reply: the table's fields as a flat field/value list, which
-- server/store/replies.py decodes into the script's typed Struct.
local function reply(t)
  local out = {}
  for k, v in pairs(t) do
    out[#out + 1] = k
    out[#out + 1] = v
  end
  return out
end
