-- Put workers who just gave a first position (a new session, or a report after
-- a silence long enough for forget_stale) into the search index, if they may be
-- in it: index_worker decides, from their record, as after any other change.
-- KEYS: seen (names the city).  ARGV: now, then worker ids.
-- Reply (CountReply): how many were looked at.
local prefix = city_prefix(KEYS[1])
for i = 2, #ARGV do index_worker(prefix .. 'w:' .. ARGV[i], ARGV[i]) end
return reply({count = #ARGV - 1})
