-- The subscriptions whose digest window is due.
-- KEYS: due. ARGV: count.
local now = now_ms()
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
