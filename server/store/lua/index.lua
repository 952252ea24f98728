-- Put workers who just gave a first position (a new session, or a report after
-- a silence long enough for forget_stale) into the search index, if they may be
-- in it: index_worker decides, from their record, as after any other change.
-- KEYS: seen (names the city), then the rest it plans (the city's indexes, each
-- worker's record and the search index of its skills).  ARGV: now, then worker ids.
-- Reply (CountReply): how many were looked at; or need.
--- @include "reply"
--- @include "plan_worker"
--- @include "needs"
--- @include "index_worker"
local prefix = city_prefix(KEYS[1])
for i = 2, #ARGV do plan_worker(prefix, ARGV[i]) end
local need = needs()
if need then return need end
for i = 2, #ARGV do index_worker(worker_key(prefix, ARGV[i]), ARGV[i]) end
return reply({count = #ARGV - 1})
