-- The heartbeat of a Celery worker's main process for the deliveries of tasks it has
-- received but no pool process has claimed yet: they fall due one TTL after it dies,
-- not a whole lease. Receiving them also moves the received mark (the latest sent_ms of
-- any record a worker has received) up to theirs: delivery_sweep's sign that the broker
-- has handed out what was sent before it.
-- KEYS: alive, due, received mark, dlv... ARGV: ttl_ms, id... Returns, per id, 1 while it
-- is still only reserved, 0 once it is claimed, final or waiting for a retry time.
local now = now_ms()
local ttl = tonumber(ARGV[1])
redis.call('SET', KEYS[1], '1', 'PX', ttl)
local mark = tonumber(redis.call('GET', KEYS[3]) or '0')
local seen = mark
local out = {}
for n = 4, #KEYS do
  local f = redis.call('HMGET', KEYS[n], 'status', 'lease_until', 'next_ms', 'sent_ms')
  if f[4] and tonumber(f[4]) > seen then seen = tonumber(f[4]) end
  if f[1] ~= 'pending' or (f[2] and tonumber(f[2]) > now)
      or (f[3] and tonumber(f[3]) > now) then
    out[n - 3] = 0
  else
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[n - 2])
    out[n - 3] = 1
  end
end
if seen > mark then redis.call('SET', KEYS[3], seen) end
return out
