-- Take the due deliveries among `id...` (read from the due set just before) for the
-- sweeper to send again, each marked sent now and due again transit_ms ahead, so
-- concurrent sweepers never hand out the same id twice.
-- A record falls due when its worker died (its reservation or claim lapsed), its retry
-- time came, or its task never reached a worker. A task still waiting in the broker's
-- queue falls due too, when the queue is slower than transit_ms: sending it again would
-- only lengthen the queue. Such a record is sent again only once the queue has moved
-- past it, so its task was lost: a worker has received something sent at or after it
-- (the received mark, delivery_reserve), or the broker's queue is empty (a Redis
-- broker's list, given as `queue`; its tasks were all sent transit_ms or more ago), or
-- a whole lease went by since it was sent. Until then it is looked at again after as
-- long again as it has waited (at most the lease left).
-- KEYS: due, received mark, queue (a Redis broker's list, or any key with check '0'),
-- dlv... ARGV: lease_ms, transit_ms, check, id... Returns the ids to send.
local now = now_ms()
local lease = tonumber(ARGV[1])
local transit = tonumber(ARGV[2])
local mark = tonumber(redis.call('GET', KEYS[2]) or '0')
if ARGV[3] == '1' and redis.call('LLEN', KEYS[3]) == 0 then mark = now end
local out = {}
for n = 4, #KEYS do
  local id = ARGV[n]
  local due = redis.call('ZSCORE', KEYS[1], id)
  if due and tonumber(due) <= now then
    local f = redis.call('HMGET', KEYS[n], 'status', 'sent_ms')
    local sent = tonumber(f[2] or '0')
    local waited = now - sent
    if sent > mark and waited < lease then
      redis.call('ZADD', KEYS[1], now + math.min(math.max(transit, waited), lease - waited), id)
    else
      if f[1] then redis.call('HSET', KEYS[n], 'sent_ms', now) end
      redis.call('ZADD', KEYS[1], now + transit, id)
      table.insert(out, id)
    end
  end
end
return out
