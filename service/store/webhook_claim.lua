-- KEYS: deliveries, the delivery's hash. ARGV: delivery id, now, lease end, claim token.
-- A due delivery is leased by moving its score to the lease's end: no other worker takes
-- it until then, and if this one dies it is due again then.
local score = redis.call('ZSCORE', KEYS[1], ARGV[1])
if not score or tonumber(score) > tonumber(ARGV[2]) then return false end
if redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('ZREM', KEYS[1], ARGV[1])
  return false
end
redis.call('ZADD', KEYS[1], 'XX', ARGV[3], ARGV[1])
redis.call('HSETNX', KEYS[2], 'first_attempt_at', ARGV[2])
redis.call('HSET', KEYS[2], 'claim', ARGV[4])
redis.call('HINCRBY', KEYS[2], 'attempts', 1)
return redis.call('HGETALL', KEYS[2])
