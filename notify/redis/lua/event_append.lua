-- Append events to the log and, under the same ids, to their channels' streams.
-- KEYS: log, idempotency key ('' = none). ARGV: retention_ms, log maxlen, channel maxlen,
-- channel stream ttl_s, idempotency ttl_s, channel stream key prefix, packed events.
-- Returns the ids in order; with an idempotency key, the JSON (id, channel) pairs kept
-- for its retries.
if KEYS[2] ~= '' then
  local prior = redis.call('GET', KEYS[2])
  if prior then return prior end
end
local cutoff = tostring(now_ms() - tonumber(ARGV[1])) .. '-0'
-- the events come as one argument: channel, type, origin and body of each in turn,
-- each after its length (big-endian, 2 bytes; 4 for the body), so the client packs
-- one argument instead of four per event and one unpack reads a whole event
local blob, pos, size = ARGV[7], 1, #ARGV[7]
local ids, channels, stream_of = {}, {}, {}
local i = 0
while pos <= size do
  local c, ty, o, b
  c, ty, o, b, pos = struct.unpack('>I2c0>I2c0>I2c0>I4c0', blob, pos)
  local id = redis.call('XADD', KEYS[1], '*', 'c', c, 't', ty, 'o', o, 'b', b)
  -- every channel stream shares the log's hash tag, so it lives in the same slot
  local ck = stream_of[c]
  if not ck then
    ck = ARGV[6] .. c
    stream_of[c] = ck
  end
  redis.call('XADD', ck, id, 'c', c, 't', ty, 'o', o, 'b', b)
  i = i + 1
  ids[i] = id
  channels[i] = c
end
-- trimming (by size, then by age) and expiry once per channel, not once per event
for _, ck in pairs(stream_of) do
  redis.call('XTRIM', ck, 'MAXLEN', '~', ARGV[3])
  redis.call('XTRIM', ck, 'MINID', '~', cutoff)
  redis.call('EXPIRE', ck, ARGV[4])
end
redis.call('XTRIM', KEYS[1], 'MAXLEN', '~', ARGV[2])
redis.call('XTRIM', KEYS[1], 'MINID', '~', cutoff)
if KEYS[2] == '' then
  return ids
end
-- a retry with the same key gets this same answer: each id with its channel
local out = {}
for j = 1, i do
  out[j] = {ids[j], channels[j]}
end
local encoded = cjson.encode(out)
redis.call('SET', KEYS[2], encoded, 'EX', ARGV[5])
return encoded
