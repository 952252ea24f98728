-- A worker's socket closed: stop routing frames to this node, unless a newer
-- session has taken over. Its offer and jobs stay; it leaves the search index
-- until it connects again. Its last position stays (its customers see it, and
-- it is a candidate there again on return) until forget_stale finds it too old.
-- KEYS: worker, then the rest it plans (the city's indexes, the node's set, the
-- search index of the worker's skills).  ARGV: now, worker id, node, session id.
-- Reply (DoneReply): done 1, or done 0 if a newer session holds the worker; or need.
--- @include "call"
--- @include "want"
--- @include "clock"
--- @include "split"
--- @include "reply"
--- @include "leave_search"
--- @include "online"
--- @include "plan_worker"
--- @include "needs"
--- @include "settle_ttl"
--- @include "worker_event"
local wkey, now = KEYS[1], clock(ARGV[1])
local wid, node, sid = ARGV[2], ARGV[3], ARGV[4]
if call('HGET', wkey, W.session) ~= sid then return reply({done = 0}) end
local prefix = city_prefix(wkey)
plan_worker(prefix, wid)
want(node_key(prefix, node))
local need = needs()
if need then return need end
local _, skills = online(prefix, wid)
leave_search(prefix, wid, split(skills))
call('HSET', wkey, W.node, '', W.session, '')
call('SREM', node_key(prefix, node), wid)
call('HDEL', online_key(prefix), wid)
settle_ttl(wkey)
worker_event(wkey, wid, WORKER_FACT.disconnected, now, {node = node, reason = 'closed'})
return reply({done = 1})
