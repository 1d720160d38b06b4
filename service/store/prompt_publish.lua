if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
if redis.call('HEXISTS', KEYS[1], 'v:' .. ARGV[1]) == 0 then return -2 end
redis.call('HSET', KEYS[1], 'published', ARGV[1], 'updated_at', ARGV[2])
return 0
