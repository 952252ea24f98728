-- A worker's socket opened on a node: route its frames there from now on. The
-- newest session wins everywhere: a session on another node is told it was
-- replaced (a session on this node is closed by the node's hub).
-- KEYS: worker, then the rest it plans (the city's indexes, the node sets of the
-- new and the old node, the search index of the old and the new skills).
-- ARGV: now, then opts (ConnectArgs, server/store/arguments.py): worker_id, node,
-- session, skills (comma list), capacity, keep_ms (the record's retention).
-- Reply (ConnectReply): the worker's state, its pending offer frame, its jobs, its
-- booked jobs not begun and until when an operator paused it; blocked 1 (nothing
-- changed) when an operator blocked it; or need.
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "split"
--- @include "contains"
--- @include "hmap"
--- @include "reply"
--- @include "send"
--- @include "online"
--- @include "plan_worker"
--- @include "needs"
--- @include "index_worker"
--- @include "worker_event"
local wkey, now, opts = KEYS[1], clock(ARGV[1]), cmsgpack.unpack(ARGV[2])
local wid, node, sid, skills = opts.worker_id, opts.node, opts.session, opts.skills
local prefix = city_prefix(wkey)
local old = hmap(wkey, {W.node, W.session, W.skills})
local was_on = old[W.node] and old[W.node] ~= ''
plan_worker(prefix, wid)
want(node_key(prefix, node))
want(holds_key(prefix))
if was_on then want(node_key(prefix, old[W.node])) end
local kept = split(skills)
for _, skill in ipairs(kept) do want(free_key(prefix, skill)) end
local need = needs()
if need then return need end
local hold = call('HMGET', holds_key(prefix), blocked_field(wid), paused_field(wid))
if hold[1] then return reply({blocked = 1}) end
if was_on then
  if old[W.node] ~= node then
    send(prefix, old[W.node], wid, 'replaced', old[W.session] or '', '')
  end
  call('SREM', node_key(prefix, old[W.node]), wid)
  local _, had = online(prefix, wid)
  for _, skill in ipairs(split(had)) do
    if not contains(kept, skill) then call('ZREM', free_key(prefix, skill), wid) end
  end
end
call('HSETNX', wkey, W.state, WORKER_INITIAL)
call('HSET', wkey, W.id, wid, W.node, node, W.session, sid, W.skills, skills,
     W.capacity, opts.capacity, W.keep_ms, opts.keep_ms)
call('SADD', node_key(prefix, node), wid)
call('HSET', online_key(prefix), wid, node .. ' ' .. skills)
index_worker(wkey, wid)
worker_event(wkey, wid, WORKER_FACT.connected, now, {node = node})
local out = hmap(wkey, {W.state, W.offer_frame, W.jobs})
out[W.jobs] = split(out[W.jobs])
out.booked = call('HKEYS', schedule_key(prefix, wid))
if hold[2] and tonumber(hold[2]) > now then out.paused_until = tonumber(hold[2]) end
return reply(out)
