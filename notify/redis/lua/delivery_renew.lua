-- A worker's heartbeat: it keeps the process's key alive and pushes the leases it
-- still holds under `token` one TTL ahead.
-- KEYS: alive, due, dlv... ARGV: ttl_ms, token, id...
local now = now_ms()
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
for n = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[n], 'status', 'lease')
  if f[1] == 'pending' and f[2] == ARGV[2] then
    redis.call('HSET', KEYS[n], 'lease_until', now + ttl)
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[n])
  end
end
return 1
