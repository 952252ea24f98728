-- A worker's socket closed: stop routing frames to this node, unless a newer
-- session has taken over. Its offer and jobs stay; it leaves the search index
-- until it connects again. Its last position stays (its customers see it, and
-- it is a candidate there again on return) until forget_stale finds it too old.
-- KEYS: worker.  ARGV: now, worker id, node, session id.
-- Reply (DoneReply): done 1, or done 0 if a newer session holds the worker.
local wkey = KEYS[1]
local wid, node, sid = ARGV[2], ARGV[3], ARGV[4]
if redis.call('HGET', wkey, 'sid') ~= sid then return reply({done = 0}) end
redis.call('HSET', wkey, 'node', '', 'sid', '')
redis.call('SREM', city_prefix(wkey) .. 'node:' .. node, wid)
index_worker(wkey, wid)
return reply({done = 1})
