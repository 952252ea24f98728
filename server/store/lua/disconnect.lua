-- A worker's socket closed: stop routing frames to this node, unless the
-- worker has already reconnected elsewhere. Its offer and jobs stay; its
-- position is dropped so that it stops crowding the geo search (a reconnect
-- puts it back with the next location report).
-- KEYS: worker, geo, seen.  ARGV: node, worker id.
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'node', '')
  redis.call('ZREM', KEYS[2], ARGV[2])
  redis.call('ZREM', KEYS[3], ARGV[2])
  return 1
end
return 0
