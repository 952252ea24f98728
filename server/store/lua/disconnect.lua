-- A worker's socket closed: stop routing frames to this node, unless a newer
-- session has taken over. Its offer and jobs stay; it leaves the search index
-- until its next location report on a new session.
-- KEYS: worker, seen.  ARGV: now, worker id, node, session id.
-- Reply (DoneReply): done 1, or done 0 if a newer session holds the worker.
local wkey, seen = KEYS[1], KEYS[2]
local wid, node, sid = ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', wkey, 'sid') ~= sid then return reply({done = 0}) end
redis.call('HSET', wkey, 'node', '', 'sid', '', 'live', '0')
redis.call('SREM', city_prefix(wkey) .. 'node:' .. node, wid)
redis.call('ZREM', seen, wid)
index_worker(wkey, wid)
return reply({done = 1})
