-- Take due deliveries and push them a lease ahead, so concurrent sweepers never hand
-- out the same id twice.
-- KEYS: due. ARGV: count, lease_ms.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[1], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
for _, id in ipairs(ids) do redis.call('ZADD', KEYS[1], now + tonumber(ARGV[2]), id) end
return ids
