-- KEYS: deliveries, the delivery's hash. ARGV: delivery id, claim token, outcome text,
-- next attempt time ('' when the delivery has ended), final state, seconds to keep the record.
-- Only the holder of the claim settles it: after a lease ran out another worker owns it.
if redis.call('HGET', KEYS[2], 'claim') ~= ARGV[2] then return 0 end
redis.call('HDEL', KEYS[2], 'claim')
redis.call('HSET', KEYS[2], 'last_outcome', ARGV[3])
if ARGV[4] ~= '' then
  redis.call('ZADD', KEYS[1], 'XX', ARGV[4], ARGV[1])
  return 1
end
redis.call('ZREM', KEYS[1], ARGV[1])
redis.call('HSET', KEYS[2], 'state', ARGV[5])
redis.call('EXPIRE', KEYS[2], ARGV[6])
return 1
