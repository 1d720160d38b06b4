if redis.call('EXISTS', KEYS[1]) == 1 then return 'exists' end
if redis.call('ZCARD', KEYS[2]) >= tonumber(ARGV[5]) then return 'full' end
redis.call('HSET', KEYS[1], 'created_at', ARGV[2], 'updated_at', ARGV[2], 'latest', 1,
           'v:1', ARGV[3])
if ARGV[4] == '1' then redis.call('HSET', KEYS[1], 'published', 1) end
redis.call('ZADD', KEYS[2], 0, ARGV[1])
return 'ok'
