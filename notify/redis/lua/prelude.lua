-- Shared by every notify script (notify/redis/scripts.py puts it first).
-- Definitions only: a script pays for what it calls.

-- Redis server time in milliseconds: one clock for every process that writes.
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end
