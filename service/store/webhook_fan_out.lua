-- KEYS: outbox, deliveries, then one delivery hash per webhook.
-- ARGV: outbox member, now, batch id, event, ended at, then one delivery id per webhook,
--       then the webhook ids in the same order.
-- Done once: only the call that takes the event out of the outbox queues its deliveries.
if redis.call('ZREM', KEYS[1], ARGV[1]) == 0 then return 0 end
local count = #KEYS - 2
for i = 1, count do
  local id, webhook = ARGV[5 + i], ARGV[5 + count + i]
  if redis.call('ZADD', KEYS[2], 'NX', ARGV[2], id) == 1 then
    redis.call('HSET', KEYS[2 + i], 'batch_id', ARGV[3], 'event', ARGV[4], 'ended_at', ARGV[5],
               'webhook_id', webhook, 'attempts', 0, 'state', 'pending')
  end
end
return 1
