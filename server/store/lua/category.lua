-- Store a category's definition as its next version, or retire or restore it;
-- count the change and tell every node.
-- KEYS: the category's hash, its version history, the set of category keys, the
-- change counter (all in the catalogue's own hash tag).
-- ARGV: now, then opts (CategoryArgs, server/store/arguments.py): key, action
-- ('apply', 'retire', 'restore'), definition (JSON, for apply), keep_versions (how
-- many the history keeps), by (who changes it: an operator's id, or 'config' for the
-- files a node starts with).
-- Reply (CategoryReply): ok 1 with the version in force, changed (0 when the
-- definition or flag was already so) and the change count; or ok 0 with
-- category_not_found (retire or restore of a category never applied).
--- @include "call"
--- @include "clock"
--- @include "hmap"
--- @include "reply"
--- @include "refused"
local ckey, hist, all, seqkey = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local now, opts = clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local key, action, definition = opts.key, opts.action, opts.definition
local cur = hmap(ckey, {C.version, C.definition, C.retired})
local version = tonumber(cur[C.version] or '0')
if action == 'apply' then
  if cur[C.definition] == definition then
    return reply({ok = 1, version = version, changed = 0, seq = call('GET', seqkey) or 0})
  end
  version = version + 1
  call('HSET', ckey, C.version, version, C.definition, definition, C.updated, now,
       C.retired, cur[C.retired] or '0', C.by, opts.by)
  call('HSET', hist, version, definition)
  local dropped = version - opts.keep_versions
  if dropped >= 1 then call('HDEL', hist, dropped) end
  call('SADD', all, key)
else
  if not cur[C.version] then return refused('category_not_found') end
  local flag = action == 'retire' and '1' or '0'
  if cur[C.retired] == flag then
    return reply({ok = 1, version = version, changed = 0, seq = call('GET', seqkey) or 0})
  end
  call('HSET', ckey, C.retired, flag, C.updated, now, C.by, opts.by)
end
local seq = call('INCR', seqkey)
redis.call(PUBLISH, CATALOGUE_CHANNEL, key .. ' ' .. version .. ' ' .. seq)
return reply({ok = 1, version = version, changed = 1, seq = seq})
