-- Removes a finished batch from sight in one step; its lines and results stay for the
-- reaper, which the schedule entry (due at ARGV[4]) points to.
-- KEYS: batch, owner's batches, owner's files, output file, error file, input file's batches,
--       retention schedule, batches by status.  ARGV: batch id, output file id, error file id, when, owner.
local f = redis.call('HMGET', KEYS[1], 'status', 'owner', 'output_file_id', 'error_file_id')
local status = f[1]
if not status or (ARGV[5] ~= '' and f[2] ~= ARGV[5]) then return 'gone' end
if status ~= 'completed' and status ~= 'failed' and status ~= 'expired'
   and status ~= 'cancelled' then
  return status
end
-- The batch ended after the caller read its file ids: read them again.
if (f[3] or '') ~= ARGV[2] or (f[4] or '') ~= ARGV[3] then return 'moved' end
redis.call('DEL', KEYS[1], KEYS[4], KEYS[5])
redis.call('ZREM', KEYS[2], ARGV[1])
redis.call('ZREM', KEYS[3], ARGV[2], ARGV[3])
redis.call('SREM', KEYS[6], ARGV[1])
redis.call('ZADD', KEYS[7], ARGV[4], ARGV[1])
redis.call('HINCRBY', KEYS[8], status, -1)
return 'removed'
