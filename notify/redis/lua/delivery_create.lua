-- Create a delivery record if absent (a replay resets a final one), sent now and due
-- transit_ms from now in case its task is lost (schedule_delivery).
-- KEYS: dlv, attempts, sub index, due. ARGV: id, sub, user, kind, event_id, channel, type,
-- body, transit_ms, retention_ms, replay. Returns 1 created/reset, 2 exists pending, 0 final.
local now = now_ms()
local status = redis.call('HGET', KEYS[1], 'status')
if status then
  if status == 'pending' then return 2 end
  if ARGV[11] ~= '1' then return 0 end
  restart_delivery(KEYS[1], KEYS[2], now)
  redis.call('HSET', KEYS[1], 'body', ARGV[8])
else
  new_delivery(KEYS[1], KEYS[3], now, tonumber(ARGV[10]), ARGV[1], ARGV[2], ARGV[3], ARGV[4],
    ARGV[5], ARGV[6], ARGV[7], ARGV[8])
end
schedule_delivery(KEYS[1], KEYS[3], KEYS[4], now, ARGV[1], tonumber(ARGV[9]))
return 1
