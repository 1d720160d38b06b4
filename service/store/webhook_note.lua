-- KEYS: a webhook's hash. ARGV: 1 to count a failed delivery (else 0), then field pairs.
-- Only while it exists: a write after its deletion would leave a stub behind.
if redis.call('EXISTS', KEYS[1]) == 0 then return 0 end
redis.call('HSET', KEYS[1], unpack(ARGV, 2))
if ARGV[1] == '1' then redis.call('HINCRBY', KEYS[1], 'failed_deliveries', 1) end
return 1
