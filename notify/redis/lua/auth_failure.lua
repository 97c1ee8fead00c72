-- Count a failed authentication from an address, per minute.
-- KEYS: the address's counter. Returns {failures this minute, seconds until it resets}.
local n = redis.call('INCR', KEYS[1])
if n == 1 then redis.call('EXPIRE', KEYS[1], 60) end
return {n, redis.call('TTL', KEYS[1])}
