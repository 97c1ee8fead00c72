-- Record an alert's state if it still has the expected one; due again in due_ms.
-- KEYS: alerts, due. ARGV: key, expected ('' = absent), new, due_ms.
local now = now_ms()
if (redis.call('HGET', KEYS[1], ARGV[1]) or '') ~= ARGV[2] then return 0 end
redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), ARGV[1])
return 1
