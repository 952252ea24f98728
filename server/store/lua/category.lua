-- Store a category's definition as its next version, or retire or restore it;
-- count the change and tell every node.
-- KEYS: the category's hash, its version history, the set of category keys, the
-- change counter (all in the catalogue's own hash tag).
-- ARGV: now, category key, action ('apply', 'retire', 'restore'), the definition
-- (JSON, for apply), how many versions the history keeps, who changes it (an
-- operator's id, or 'config' for the files a node starts with).
-- Reply (CategoryReply): ok 1 with the version in force, changed (0 when the
-- definition or flag was already so) and the change count; or ok 0 with
-- category_not_found (retire or restore of a category never applied).
local ckey, hist, all, seqkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, key, action = clock(ARGV[1]), ARGV[2], ARGV[3]
local cur = hmap(ckey, {'version', 'def', 'retired'})
local version = tonumber(cur.version or '0')
if action == 'apply' then
  if cur.def == ARGV[4] then
    return reply({ok = 1, version = version, changed = 0, seq = call('GET', seqkey) or 0})
  end
  version = version + 1
  call('HSET', ckey, 'version', version, 'def', ARGV[4], 'updated', now,
       'retired', cur.retired or '0', 'by', ARGV[6])
  call('HSET', hist, version, ARGV[4])
  local dropped = version - tonumber(ARGV[5])
  if dropped >= 1 then call('HDEL', hist, dropped) end
  call('SADD', all, key)
else
  if not cur.version then return refused('category_not_found') end
  local flag = action == 'retire' and '1' or '0'
  if cur.retired == flag then
    return reply({ok = 1, version = version, changed = 0, seq = call('GET', seqkey) or 0})
  end
  call('HSET', ckey, 'retired', flag, 'updated', now, 'by', ARGV[6])
end
local seq = call('INCR', seqkey)
redis.call(PUBLISH, city_prefix(ckey) .. 'changed', key .. ' ' .. version .. ' ' .. seq)
return reply({ok = 1, version = version, changed = 1, seq = seq})
