-- Append events to the log and, under the same ids, to their channels' streams.
-- KEYS: log[, idempotency key]. ARGV: retention_ms, log maxlen, channel maxlen,
-- channel stream ttl_s, idempotency ttl_s, channel stream key prefix, packed events,
-- shard count, shard index.
-- Returns the ids in order; with an idempotency key, the JSON (id, channel) pairs kept
-- for its retries.
-- Every key is under the log's hash tag (one shard: one Cluster slot).
local idem = KEYS[2]
if idem then
  local prior = redis.call('GET', idem)
  if prior then return prior end
end
local now = now_ms()
local cutoff = tostring(now - tonumber(ARGV[1])) .. '-0'
-- One shard: Redis picks the ids. N shards: this shard gives out only sequence numbers
-- congruent to its index modulo N, so ids stay unique across shards (the last id given
-- is kept beside the log; an id refused as too small re-reads the log's own last id).
local count, shard = tonumber(ARGV[8] or '1'), tonumber(ARGV[9] or '0')
local last_key = KEYS[1] .. ':last'
local last_ms, last_seq = 0, -1
if count > 1 then
  local last = redis.call('GET', last_key)
  if last then
    local dash = string.find(last, '-', 1, true)
    last_ms, last_seq = tonumber(string.sub(last, 1, dash - 1)), tonumber(string.sub(last, dash + 1))
  end
end
local function next_id()
  if now > last_ms then
    last_ms, last_seq = now, shard
  else
    local s = last_seq + 1
    last_seq = s + (shard - s) % count
  end
  return string.format('%d-%d', last_ms, last_seq)
end
local function add(key, ...)
  if count == 1 then
    return redis.call('XADD', key, '*', ...)
  end
  local got = redis.pcall('XADD', key, next_id(), ...)
  if type(got) == 'table' and got.err then
    -- something else wrote a greater id: go on from the log's own last id
    local info = redis.call('XINFO', 'STREAM', key)
    for j = 1, #info, 2 do
      if info[j] == 'last-generated-id' then
        local lid = info[j + 1]
        local dash = string.find(lid, '-', 1, true)
        last_ms, last_seq = tonumber(string.sub(lid, 1, dash - 1)), tonumber(string.sub(lid, dash + 1))
      end
    end
    got = redis.call('XADD', key, next_id(), ...)
  end
  return got
end
-- the events come as one argument: channel, type, origin and body of each in turn,
-- each after its length (big-endian, 2 bytes; 4 for the body), so the client packs
-- one argument instead of four per event and one unpack reads a whole event
local blob, pos, size = ARGV[7], 1, #ARGV[7]
local ids, channels, stream_of = {}, {}, {}
local i = 0
while pos <= size do
  local c, ty, o, b
  c, ty, o, b, pos = struct.unpack('>I2c0>I2c0>I2c0>I4c0', blob, pos)
  local id = add(KEYS[1], 'c', c, 't', ty, 'o', o, 'b', b)
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
if count > 1 then
  redis.call('SET', last_key, string.format('%d-%d', last_ms, last_seq))
end
if not idem then
  return ids
end
-- a retry with the same key gets this same answer: each id with its channel
local out = {}
for j = 1, i do
  out[j] = {ids[j], channels[j]}
end
local encoded = cjson.encode(out)
redis.call('SET', idem, encoded, 'EX', ARGV[5])
return encoded
