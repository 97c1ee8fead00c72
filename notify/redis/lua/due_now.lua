-- The members of a due set (scored by Unix ms) whose time has come by the Redis clock,
-- earliest first.
-- KEYS: due. ARGV: count.
local now = now_ms()
return redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, ARGV[1])
