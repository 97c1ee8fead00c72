-- Open a stream unless the subject already holds `limit` unexpired leases.
-- KEYS: the subject's leases. ARGV: now (seconds), stream id, limit, lease seconds.
-- Returns 1 leased (or renewed), 0 at the limit.
local now = tonumber(ARGV[1])
redis.call('ZREMRANGEBYSCORE', KEYS[1], '-inf', now)
if redis.call('ZSCORE', KEYS[1], ARGV[2]) == false
   and redis.call('ZCARD', KEYS[1]) >= tonumber(ARGV[3]) then
  return 0
end
redis.call('ZADD', KEYS[1], now + tonumber(ARGV[4]), ARGV[2])
redis.call('EXPIRE', KEYS[1], math.ceil(tonumber(ARGV[4])) + 1)
return 1
