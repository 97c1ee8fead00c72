-- Compare-and-set one subscription, and tell the change feed.
-- KEYS: subs hash, user set, changes. ARGV: id, expected json ('' = absent), new json
-- ('' = delete), user, kind, maxlen, per-user limit on creation (0 = none).
-- Returns 1 done, 0 the stored value changed meanwhile, -1 the user is at the limit.
local cur = redis.call('HGET', KEYS[1], ARGV[1])
if (cur or '') ~= ARGV[2] then return 0 end
local limit = tonumber(ARGV[7])
if ARGV[2] == '' and limit > 0 and redis.call('SCARD', KEYS[2]) >= limit then
  return -1
end
if ARGV[3] == '' then
  redis.call('HDEL', KEYS[1], ARGV[1])
  redis.call('SREM', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
    'op', 'del', 'id', ARGV[1], 'user', ARGV[4], 'kind', ARGV[5])
else
  redis.call('HSET', KEYS[1], ARGV[1], ARGV[3])
  redis.call('SADD', KEYS[2], ARGV[1])
  redis.call('XADD', KEYS[3], 'MAXLEN', '~', ARGV[6], '*',
    'op', 'put', 'id', ARGV[1], 'user', ARGV[4], 'kind', ARGV[5])
end
return 1
