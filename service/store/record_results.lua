local batch, results, usage, failed_bits = KEYS[1], KEYS[2], KEYS[3], KEYS[4]
if redis.call('EXISTS', batch) == 0 then return {0, ''} end
local now = ARGV[1]
local added = 0
for i = 5, #ARGV, 6 do
  local index, line, outcome = ARGV[i], ARGV[i + 1], ARGV[i + 2]
  if redis.call('HSETNX', results, index, line) == 1 then
    added = added + 1
    if outcome == 'succeeded' then
      redis.call('HINCRBY', batch, 'completed', 1)
      redis.call('HINCRBY', batch, 'output_bytes', #line + 1)
    else
      redis.call('HINCRBY', batch, 'failed', 1)
      redis.call('HINCRBY', batch, 'error_bytes', #line + 1)
      redis.call('SETBIT', failed_bits, tonumber(index), 1)
      if outcome == 'expired' then redis.call('HINCRBY', batch, 'expired_lines', 1) end
    end
    local tokens_in, tokens_out, model = tonumber(ARGV[i + 3]), tonumber(ARGV[i + 4]), ARGV[i + 5]
    redis.call('HINCRBY', batch, 'input_tokens', tokens_in)
    redis.call('HINCRBY', batch, 'output_tokens', tokens_out)
    if model ~= '' and tokens_in + tokens_out > 0 then
      redis.call('HINCRBY', usage, 'in\t' .. model, tokens_in)
      redis.call('HINCRBY', usage, 'out\t' .. model, tokens_out)
    end
  end
end
if added == 0 then return {0, ''} end
local f = redis.call('HMGET', batch, 'completed', 'failed', 'total', 'status', 'expired_lines',
                     'owner', 'id', 'output_bytes', 'error_bytes', 'retention')
-- Progress: the sweeper re-queues only batches that stop making any.
redis.call('ZADD', KEYS[8], 'XX', now, f[7])
local completed, failed, total = tonumber(f[1]), tonumber(f[2]), tonumber(f[3])
if completed + failed < total then return {added, ''} end
local status = f[4]
if status == 'completed' or status == 'cancelled' or status == 'expired' then
  return {added, ''}
end
local final = 'completed'
if status == 'cancelling' then final = 'cancelled'
elseif tonumber(f[5] or '0') > 0 then final = 'expired' end
-- Retention starts as the batch ends: on the reaper's schedule in this same step.
local removed_at = tonumber(now) + (tonumber(f[10]) or tonumber(ARGV[4]))
redis.call('HSET', batch, 'status', final, 'finalizing_at', now, final .. '_at', now,
           'data_expires_at', removed_at)
redis.call('ZREM', KEYS[8], f[7])
redis.call('ZADD', KEYS[9], removed_at, f[7])
local function create_file(key, id, kind, size)
  redis.call('HSET', key, 'id', id, 'owner', f[6], 'bytes', size, 'created_at', now,
             'filename', f[7] .. '_' .. kind .. '.jsonl', 'purpose', 'batch_output',
             'batch_id', f[7], 'kind', kind, 'expires_at', removed_at)
  redis.call('ZADD', KEYS[7], now, id)
  redis.call('HSET', batch, kind .. '_file_id', id)
end
if completed > 0 then create_file(KEYS[5], ARGV[2], 'output', f[8] or '0') end
if failed > 0 then create_file(KEYS[6], ARGV[3], 'error', f[9] or '0') end
-- The final status, only from the one call that set it: the service logs it once.
return {added, final, completed, failed, total}
