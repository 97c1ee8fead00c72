-- The heartbeat of a Celery worker's main process for the deliveries of tasks it has
-- received but no pool process has claimed yet: they fall due one TTL after it dies,
-- not a whole lease.
-- KEYS: alive, due, dlv... ARGV: ttl_ms, id... Returns, per id, 1 while it is still only
-- reserved, 0 once it is claimed, final or waiting for a retry time.
local now = now_ms()
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
local out = {}
for n = 3, #KEYS do
  local f = redis.call('HMGET', KEYS[n], 'status', 'lease_until', 'next_ms')
  if f[1] ~= 'pending' or (f[2] and tonumber(f[2]) > now)
      or (f[3] and tonumber(f[3]) > now) then
    out[n - 2] = 0
  else
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[n - 1])
    out[n - 2] = 1
  end
end
return out
