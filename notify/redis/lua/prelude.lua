-- Shared by every notify script (notify/redis/scripts.py puts it first).
-- Definitions only: a script pays for what it calls.

-- Redis server time in milliseconds: one clock for every process that writes.
local function now_ms()
  local t = redis.call('TIME')
  return t[1] * 1000 + math.floor(t[2] / 1000)
end

-- The delivery record ---------------------------------------------------------------
-- One hash per delivery (keys.delivery), written only through the functions below and
-- the delivery_* scripts (notify.redis.ledger) and digest_* ones (notify.redis.digests):
--   id, subscription, user, kind, event_id, channel, type, body (dropped once delivered)
--   status          pending | delivered | failed
--   attempt_count   attempts made (a deferral is none)
--   created_ms      when it was created; next_ms: when it is next due, while pending
--   sent_ms         when its task was last handed to the broker (see schedule_delivery)
--   lease, lease_until   the claiming worker's token and how long its claim holds
--   done_ms         when it became delivered or failed
--   digest          the opened_ms of the digest window an email event went into
-- Its attempts are a list (keys.delivery_attempts); the subscription's index (a sorted
-- set by created_ms) and the due set (by when someone should look at it) list its id.

-- Create the record of delivery `id`, pending; drop what is older than retention_ms from
-- the subscription's index (then schedule_delivery lists it there).
local function new_delivery(dlv, index, now, retention_ms, id, sub, user, kind, event_id,
                            channel, event_type, body)
  redis.call('HSET', dlv, 'id', id, 'subscription', sub, 'user', user,
    'kind', kind, 'event_id', event_id, 'channel', channel, 'type', event_type,
    'body', body, 'status', 'pending', 'attempt_count', 0, 'created_ms', now, 'next_ms', now)
  redis.call('ZREMRANGEBYSCORE', index, '-inf', now - retention_ms)
end

-- List delivery `id` in its subscription's index, mark it sent now and make it due
-- transit_ms from now: by then a worker has received its task (and keeps it from falling
-- due, delivery_reserve) unless the task was lost on its way; delivery_sweep tells the
-- two apart.
local function schedule_delivery(dlv, index, due, now, id, transit_ms)
  redis.call('ZADD', index, now, id)
  redis.call('HSET', dlv, 'sent_ms', now)
  redis.call('ZADD', due, now + transit_ms, id)
end

-- Make a record pending again with a full schedule (a replay, a retry of a failed one):
-- no attempts counted, due at once, in no digest window (a replayed event goes into a
-- new one), kept until it ends again.
local function restart_delivery(dlv, attempts, now)
  redis.call('HSET', dlv, 'status', 'pending', 'attempt_count', 0, 'next_ms', now)
  redis.call('HDEL', dlv, 'lease', 'lease_until', 'done_ms', 'digest')
  redis.call('PERSIST', dlv)
  redis.call('PERSIST', attempts)
end

-- End a pending record as `status` (delivered | failed): off the due set, kept with its
-- attempts for `retention` seconds; a delivered one no longer needs its body.
local function end_delivery(dlv, attempts, due, id, status, now, retention)
  redis.call('HSET', dlv, 'status', status, 'done_ms', now)
  redis.call('HDEL', dlv, 'lease', 'lease_until', 'next_ms')
  if status == 'delivered' then redis.call('HDEL', dlv, 'body') end
  redis.call('ZREM', due, id)
  redis.call('EXPIRE', dlv, retention)
  redis.call('EXPIRE', attempts, retention)
end
