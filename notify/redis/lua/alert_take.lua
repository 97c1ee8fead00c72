-- The alerts due for re-sending; drops those too old or already resolved and re-sent.
-- KEYS: alerts, due. ARGV: count, resend_ms, max_age_ms, keep_ms.
local now = now_ms()
local ids = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, tonumber(ARGV[1]))
local out = {}
for _, id in ipairs(ids) do
  local raw = redis.call('HGET', KEYS[1], id)
  local rec = raw and cjson.decode(raw)
  if not rec or rec['resent'] or (rec['state'] == 'firing'
      and now - tonumber(rec['since_ms']) > tonumber(ARGV[3])) then
    redis.call('HDEL', KEYS[1], id)
    redis.call('ZREM', KEYS[2], id)
  elseif rec['state'] == 'firing' then
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), id)
    table.insert(out, raw)
  else
    rec['resent'] = true
    redis.call('HSET', KEYS[1], id, cjson.encode(rec))
    redis.call('ZADD', KEYS[2], now + tonumber(ARGV[4]), id)
    table.insert(out, raw)
  end
end
return out
