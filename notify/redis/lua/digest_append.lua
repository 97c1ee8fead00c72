-- Add an email event to its subscription's open digest window (opening one if there is
-- none) and note the window on the event's delivery record, so a redelivered event is
-- never added twice.
-- KEYS: dlv, window, events, due. ARGV: sub, event_id, envelope, window_ms, max_events.
-- Returns the opened_ms of the window holding the event, or false if the record is gone.
local now = now_ms()
if redis.call('EXISTS', KEYS[1]) == 0 then return false end
local seen = redis.call('HGET', KEYS[1], 'digest')
if seen then return seen end
local opened = redis.call('HGET', KEYS[2], 'opened_ms')
if not opened then
  opened = string.format('%d', now)
  redis.call('HSET', KEYS[2], 'opened_ms', opened, 'closes_ms', now + tonumber(ARGV[4]))
  redis.call('ZADD', KEYS[4], now + tonumber(ARGV[4]), ARGV[1])
end
redis.call('HSET', KEYS[3], ARGV[2], ARGV[3])
if redis.call('HLEN', KEYS[3]) >= tonumber(ARGV[5]) then
  redis.call('ZADD', KEYS[4], now, ARGV[1])
end
redis.call('HSET', KEYS[1], 'digest', opened)
return opened
