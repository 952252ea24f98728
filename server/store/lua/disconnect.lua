-- A worker's socket closed: stop routing frames to this node, unless the
-- worker has already reconnected elsewhere. Its offer and jobs stay.
-- KEYS: worker.  ARGV: node.
if redis.call('HGET', KEYS[1], 'node') == ARGV[1] then
  redis.call('HSET', KEYS[1], 'node', '')
  return 1
end
return 0
