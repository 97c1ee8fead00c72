-- Close a digest window into the digest's own delivery record (its events' envelopes in
-- id order), pending, sent now and due transit_ms from now in case its task is lost.
-- KEYS: window, events, due, dlv, attempts, sub index, retry due.
-- ARGV: sub, opened_ms, digest id, user, pattern, transit_ms, retention_ms.
-- Returns the number of events in the digest created, 0 when someone else flushed.
local now = now_ms()
if redis.call('HGET', KEYS[1], 'opened_ms') ~= ARGV[2] then return 0 end
local flat = redis.call('HGETALL', KEYS[2])
redis.call('DEL', KEYS[1], KEYS[2])
redis.call('ZREM', KEYS[3], ARGV[1])
if #flat == 0 or redis.call('EXISTS', KEYS[4]) == 1 then return 0 end
local items = {}
for i = 1, #flat, 2 do
  local ms, seq = string.match(flat[i], '^(%d+)-(%d+)$')
  table.insert(items, {tonumber(ms), tonumber(seq), flat[i], flat[i + 1]})
end
table.sort(items, function(a, b)
  if a[1] ~= b[1] then return a[1] < b[1] end
  return a[2] < b[2]
end)
local bodies = {}
for i, item in ipairs(items) do bodies[i] = item[4] end
new_delivery(KEYS[4], KEYS[6], now, tonumber(ARGV[7]), ARGV[3], ARGV[1], ARGV[4], 'email',
  items[1][3], ARGV[5], 'digest', '[' .. table.concat(bodies, ',') .. ']')
schedule_delivery(KEYS[4], KEYS[6], KEYS[7], now, ARGV[3], tonumber(ARGV[6]))
return #items
