-- A failed delivery starts over with a full schedule (and leaves the failure indexes).
-- KEYS: dlv, attempts, due, all failures, the owner's failures. ARGV: id.
local now = now_ms()
if redis.call('HGET', KEYS[1], 'status') ~= 'failed' then return 0 end
restart_delivery(KEYS[1], KEYS[2], now)
redis.call('ZADD', KEYS[3], now, ARGV[1])
redis.call('ZREM', KEYS[4], ARGV[1])
redis.call('ZREM', KEYS[5], ARGV[1])
return 1
