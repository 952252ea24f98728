-- A worker's socket opened on a node: route its frames there from now on. The
-- newest session wins everywhere: a session on another node is told it was
-- replaced (a session on this node is closed by the node's hub).
-- KEYS: worker, then the rest it plans (the city's indexes, the node sets of the
-- new and the old node, the search index of the old and the new skills).
-- ARGV: now, worker id, node, session id, skills (comma list), capacity, retention ms.
-- Reply (ConnectReply): the worker's state, its pending offer frame, its jobs, its
-- booked jobs not begun and until when an operator paused it; blocked 1 (nothing
-- changed) when an operator blocked it; or need.
local wkey, now = KEYS[1], clock(ARGV[1])
local wid, node, sid, skills = ARGV[2], ARGV[3], ARGV[4], ARGV[5]
local prefix = city_prefix(wkey)
local old = hmap(wkey, {'node', 'sid', 'skills'})
local was_on = old.node and old.node ~= ''
plan_worker(prefix, wid)
want(prefix .. 'node:' .. node)
want(prefix .. 'holds')
if was_on then want(prefix .. 'node:' .. old.node) end
local kept = split(skills)
for _, skill in ipairs(kept) do want(prefix .. 'free:' .. skill) end
local need = needs()
if need then return need end
local hold = call('HMGET', prefix .. 'holds', 'b:' .. wid, 'p:' .. wid)
if hold[1] then return reply({blocked = 1}) end
if was_on then
  if old.node ~= node then send(prefix, old.node, wid, 'replaced', old.sid or '', '') end
  call('SREM', prefix .. 'node:' .. old.node, wid)
  local _, had = online(prefix, wid)
  for _, skill in ipairs(split(had)) do
    if not contains(kept, skill) then call('ZREM', prefix .. 'free:' .. skill, wid) end
  end
end
call('HSETNX', wkey, 'state', WORKER_INITIAL)
call('HSET', wkey, 'id', wid, 'node', node, 'sid', sid, 'skills', skills,
     'capacity', ARGV[6], 'keep', ARGV[7])
call('SADD', prefix .. 'node:' .. node, wid)
call('HSET', prefix .. 'online', wid, node .. ' ' .. skills)
index_worker(wkey, wid)
worker_event(wkey, wid, 'connected', now, {node = node})
local out = hmap(wkey, {'state', 'offer_frame', 'jobs'})
out.jobs = split(out.jobs)
out.booked = call('HKEYS', prefix .. 'sched:' .. wid)
if hold[2] and tonumber(hold[2]) > now then out.paused_until = tonumber(hold[2]) end
return reply(out)
