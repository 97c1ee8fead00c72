-- Take n events from a subject's publish budget: a token bucket of `rate` tokens a
-- second, holding at most `burst`. A take of more than the burst (a big batch) needs a
-- full bucket and leaves it in debt, so it can pass at all (it never could otherwise,
-- whatever Retry-After said) and the average rate still holds: the debt is paid before
-- anything else passes.
-- KEYS: bucket. ARGV: rate, burst, n. Returns {1, '0'} taken, {0, seconds to wait}.
local rate, burst, n = tonumber(ARGV[1]), tonumber(ARGV[2]), tonumber(ARGV[3])
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local v = redis.call('HMGET', KEYS[1], 'tokens', 'ts')
local tokens = tonumber(v[1]) or burst
local ts = tonumber(v[2]) or now
tokens = math.min(burst, tokens + math.max(0, now - ts) * rate)
local need = math.min(n, burst)
if tokens < need then
  return {0, tostring((need - tokens) / rate)}
end
redis.call('HSET', KEYS[1], 'tokens', tostring(tokens - n), 'ts', tostring(now))
redis.call('PEXPIRE', KEYS[1], math.ceil((burst - tokens + n) / rate * 1000) + 1000)
return {1, '0'}
