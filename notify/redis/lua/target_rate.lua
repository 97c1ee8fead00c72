-- Take up to `wanted` requests from a target's shared budget (GCRA).
-- KEYS: target key. ARGV: rate per second, burst, wanted. Returns {granted, wait_ms}.
local now = now_ms()
local interval = 1000 / tonumber(ARGV[1])
local burst = interval * tonumber(ARGV[2])
local tat = tonumber(redis.call('GET', KEYS[1]) or now)
if tat < now then tat = now end
local granted = math.floor((now + burst - tat) / interval)
if granted < 0 then granted = 0 end
if granted > tonumber(ARGV[3]) then granted = tonumber(ARGV[3]) end
tat = tat + granted * interval
if granted > 0 then
  redis.call('SET', KEYS[1], tostring(tat), 'PX', math.ceil(tat - now + burst) + 1000)
end
local wait = math.ceil(tat + interval - burst - now)
if wait < 0 then wait = 0 end
return {granted, wait}
