local status = redis.call('HGET', KEYS[1], 'status')
if status == 'in_progress' or status == 'validating' then
  redis.call('HSET', KEYS[1], 'status', 'cancelling', 'cancelling_at', ARGV[1])
  redis.call('HINCRBY', KEYS[2], status, -1)
  redis.call('HINCRBY', KEYS[2], 'cancelling', 1)
  return 'cancelling'
end
return status
