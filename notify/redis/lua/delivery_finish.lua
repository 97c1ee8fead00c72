-- Record the outcomes of attempts and count metrics.
-- KEYS: due, metrics, all failures, then dlv, attempts and the owner's failures per
-- delivery. ARGV: token, retention_s, kept, metric count m, m (name, increment) pairs,
-- then id, outcome, attempt json ('' = none), delay_ms per delivery. A success is
-- recorded even by a worker whose lease lapsed: the receiver has the event. Other
-- outcomes only count from the lease holder. A delivery that ends failed goes into both
-- failure indexes, which drop what is older than the retention.
local now = now_ms()
local token, retention, kept = ARGV[1], ARGV[2], tonumber(ARGV[3])
local m = tonumber(ARGV[4])
for i = 0, m - 1 do
  redis.call('HINCRBY', KEYS[2], ARGV[5 + 2 * i], ARGV[6 + 2 * i])
end
local base = 5 + 2 * m
local oldest = now - tonumber(retention) * 1000
for n = 0, (#KEYS - 3) / 3 - 1 do
  local dlv, attempts, owned = KEYS[4 + 3 * n], KEYS[5 + 3 * n], KEYS[6 + 3 * n]
  local a = base + 4 * n
  local id, outcome, entry, delay = ARGV[a], ARGV[a + 1], ARGV[a + 2], tonumber(ARGV[a + 3])
  local f = redis.call('HMGET', dlv, 'status', 'lease')
  if f[1] then
    if entry ~= '' then
      redis.call('RPUSH', attempts, entry)
      redis.call('LTRIM', attempts, -kept, -1)
    end
    -- the status it ends with; false: not this worker's to record; nil: still pending
    local final = nil
    if outcome == 'delivered' and f[1] == 'pending' then
      final = 'delivered'
    elseif f[1] ~= 'pending' or f[2] ~= token then
      final = false
    elseif outcome == 'failed' then
      for _, index in ipairs({KEYS[3], owned}) do
        redis.call('ZADD', index, now, id)
        redis.call('ZREMRANGEBYSCORE', index, '-inf', oldest)
      end
      final = 'failed'
    else
      redis.call('HSET', dlv, 'next_ms', now + delay)
      redis.call('HDEL', dlv, 'lease', 'lease_until')
      redis.call('ZADD', KEYS[1], now + delay, id)
    end
    if final ~= false then
      if outcome ~= 'deferred' then redis.call('HINCRBY', dlv, 'attempt_count', 1) end
      if final then end_delivery(dlv, attempts, KEYS[1], id, final, now, retention) end
    end
  end
end
return 1
