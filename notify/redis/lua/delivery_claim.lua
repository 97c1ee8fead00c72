-- Lease every delivery that is pending, due and not leased elsewhere.
-- KEYS: due, dlv... ARGV: lease_ms, token, id... One entry per id:
-- {1, fields...} claimed, {0} gone or final, {-1} leased elsewhere, {-2} not yet due.
local now = now_ms()
local lease = tonumber(ARGV[1])
local out = {}
for n = 1, #KEYS - 1 do
  local key, id = KEYS[n + 1], ARGV[n + 2]
  local f = redis.call('HMGET', key, 'status', 'lease_until', 'next_ms')
  if f[1] ~= 'pending' then
    redis.call('ZREM', KEYS[1], id)
    out[n] = {0}
  elseif f[2] and tonumber(f[2]) > now then
    out[n] = {-1}
  elseif f[3] and tonumber(f[3]) > now then
    out[n] = {-2}
  else
    redis.call('HSET', key, 'lease', ARGV[2], 'lease_until', now + lease)
    redis.call('ZADD', KEYS[1], now + lease, id)
    local v = redis.call('HMGET', key, 'subscription', 'user', 'kind', 'event_id', 'body',
      'attempt_count')
    out[n] = {1, v[1], v[2], v[3], v[4], v[5], v[6]}
  end
end
return out
