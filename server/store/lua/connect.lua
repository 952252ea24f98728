-- A worker's socket opened on a node: route its frames there from now on. The
-- newest session wins everywhere: a session on another node is told it was
-- replaced (a session on this node is closed by the node's hub).
-- KEYS: worker.  ARGV: now, worker id, node, session id, skills (comma list), capacity,
-- retention ms.
-- Reply (ConnectReply): the worker's state, its pending offer frame and its jobs.
local wkey = KEYS[1]
local wid, node, sid, skills = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prefix = city_prefix(wkey)
local old = hmap(wkey, {'node', 'sid', 'skills'})
if old.node and old.node ~= '' then
  if old.node ~= node then send(old.node, wid, 'replaced', old.sid or '', '') end
  redis.call('SREM', prefix .. 'node:' .. old.node, wid)
end
local kept = split(skills)
for _, skill in ipairs(split(old.skills)) do
  if not contains(kept, skill) then redis.call('ZREM', prefix .. 'free:' .. skill, wid) end
end
redis.call('HSETNX', wkey, 'state', WORKER_INITIAL)
redis.call('HSET', wkey, 'id', wid, 'node', node, 'sid', sid, 'skills', skills,
           'capacity', ARGV[6], 'keep', ARGV[7])
redis.call('SADD', prefix .. 'node:' .. node, wid)
index_worker(wkey, wid)
local out = hmap(wkey, {'state', 'offer_frame', 'jobs'})
out.jobs = split(out.jobs)
return reply(out)
