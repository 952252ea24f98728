-- A worker's socket opened on a node: route its frames there from now on.
-- KEYS: worker.  ARGV: worker id, node, skills (",a,b,"), capacity.
-- Returns {state, offer frame or '', job order ids (comma list)}.
local wkey = KEYS[1]
redis.call('HSETNX', wkey, 'state', 'offline')
redis.call('HSET', wkey, 'id', ARGV[1], 'node', ARGV[2], 'skills', ARGV[3], 'capacity', ARGV[4])
local w = redis.call('HMGET', wkey, 'state', 'offer_frame', 'jobs')
return {w[1], w[2] or '', w[3] or ''}
