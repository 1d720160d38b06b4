if redis.call('EXISTS', KEYS[1]) == 0 then return -1 end
local latest = tonumber(redis.call('HGET', KEYS[1], 'latest'))
if latest >= tonumber(ARGV[2]) then return -2 end
latest = latest + 1
redis.call('HSET', KEYS[1], 'latest', latest, 'v:' .. latest, ARGV[1], 'updated_at', ARGV[3])
return latest
