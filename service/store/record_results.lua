-- Records finished lines of one batch, each once, and ends the batch with its last line.
local batch, results, usage, failed_bits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
local output_file, error_file, owner_files, active = KEYS[5], KEYS[6], KEYS[7], KEYS[8]
local owner_webhooks, webhook_outbox, status_counts = KEYS[9], KEYS[10], KEYS[11]
local provider_key, retention_schedule = KEYS[12], KEYS[13]
if redis.call('EXISTS', batch) == 0 then return {0, ''} end
local now = ARGV[1]
local added = 0
for i = 5, #ARGV, 7 do
  local index, line, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSETNX', results, index, line) == 1 then
    added = added + 1
    if outcome == 'succeeded' then
      redis.call('HINCRBY', batch, 'completed', 1)
      redis.call('HINCRBY', batch, 'output_bytes', #line + 1)
    else
      -- failed, cancelled and expired lines are counted apart; all go to the error file.
      redis.call('HINCRBY', batch, outcome, 1)
      redis.call('HINCRBY', batch, 'error_bytes', #line + 1)
      redis.call('SETBIT', failed_bits, tonumber(index), 1)
    end
    local tokens_in, tokens_out, model = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
    redis.call('HINCRBY', batch, 'input_tokens', tokens_in)
    redis.call('HINCRBY', batch, 'output_tokens', tokens_out)
    local tokens_cached = tonumber(ARGV[i + 6])
    if tokens_cached > 0 then redis.call('HINCRBY', batch, 'cached_tokens', tokens_cached) end
    if model ~= '' and tokens_in + tokens_out > 0 then
      redis.call('HINCRBY', usage, 'in\t' .. model, tokens_in)
      redis.call('HINCRBY', usage, 'out\t' .. model, tokens_out)
      if tokens_cached > 0 then
        redis.call('HINCRBY', usage, 'cached\t' .. model, tokens_cached)
      end
    end
  end
end
if added == 0 then return {0, ''} end
local f = redis.call('HMGET', batch, 'completed', 'failed', 'total', 'status', 'expired',
                     'owner', 'id', 'output_bytes', 'error_bytes', 'cancelled', 'retention')
-- Progress: the sweeper re-queues only batches that stop making any.
redis.call('ZADD', active, 'XX', now, f[7])
local completed, failed, total = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
local expired, cancelled = tonumber(f[5] or '0'), tonumber(f[10] or '0')
local unsucceeded = failed + expired + cancelled
if completed + unsucceeded < total then return {added, ''} end
local status = f[4]
if status == 'completed' or status == 'cancelled' or status == 'expired' then
  return {added, ''}
end
local final = 'completed'
if status == 'cancelling' then final = 'cancelled'
elseif expired > 0 then final = 'expired' end
-- Retention starts as the batch ends: on the reaper's schedule in this same step.
local removed_at = tonumber(now) + (tonumber(f[11]) or tonumber(ARGV[4]))
redis.call('HSET', batch, 'status', final, 'finalizing_at', now, final .. '_at', now,
           'data_expires_at', removed_at)
redis.call('HINCRBY', status_counts, status, -1)
redis.call('HINCRBY', status_counts, final, 1)
redis.call('ZREM', active, f[7])
redis.call('ZADD', retention_schedule, removed_at, f[7])
-- Webhooks: the end is queued for delivery in this same step, if the key has any webhook.
if redis.call('EXISTS', owner_webhooks) == 1 then
  redis.call('ZADD', webhook_outbox, now, f[7] .. ' batch.' .. final)
end
-- A caller's provider key is kept only while its batch runs.
redis.call('DEL', provider_key)
local function create_file(key, id, kind, size)
  redis.call('HSET', key, 'id', id, 'owner', f[6], 'bytes', size, 'created_at', now,
             'filename', f[7] .. '_' .. kind .. '.jsonl', 'purpose', 'batch_output',
             'batch_id', f[7], 'kind', kind, 'expires_at', removed_at)
  redis.call('ZADD', owner_files, now, id)
  redis.call('HSET', batch, kind .. '_file_id', id)
end
if completed > 0 then create_file(output_file, ARGV[2], 'output', f[8] or '0') end
if unsucceeded > 0 then create_file(error_file, ARGV[3], 'error', f[9] or '0') end
-- The final status, only from the one call that set it: the service logs it once.
return {added, final, completed, unsucceeded, total}
