"""The Lua scripts behind :class:`shared.store.TaskStore`: every multi-key write is one
script, so a crash or a racing replica never leaves a task half-stored.

Both scripts append the task's new state to its event stream (keys.task_events) and
publish its sequence number (keys.task_channel) in the same script that changes the
status, so watchers (shared.events) can neither miss a change nor see them out of order.
"""

from __future__ import annotations

#: Events kept per task stream: a task changes status a handful of times (pending,
#: processing, a final status; a few more when parked or reclaimed).
EVENTS_KEPT = 64

# One event: bump the hash's event_seq, snapshot the hash into the stream under id
# 0-<seq>, tell the channel. Arguments: hash, stream, channel.
_EVENT = f"""
local function event(hash, stream, channel)
  local n = redis.call('HINCRBY', hash, 'event_seq', 1)
  redis.call('XADD', stream, 'MAXLEN', {EVENTS_KEPT}, '0-' .. n,
    unpack(redis.call('HGETALL', hash)))
  redis.call('PUBLISH', channel, n)
end
"""

# KEYS: hash, input, pending index, all index, stream, sequence, events,
#       [owner's all index, owner's pending index], [probed streams..., durations list],
#       [guard]
# ARGV: task_id, input bytes, has owner (0/1), guard record ('' for none), guard ttl,
#       probe keys (streams + durations list; 0: no probe), duration samples,
#       the hash's fields as one JSON array [field, value, ...] (redis-py packs one
#       argument for less CPU than twenty), input inline (1: SET the input key; 0: the
#       input is in the blob store, named by the hash's input_blob field), event channel
# Returns {1, seq, entries in the probed streams, {durations}} when stored (the probe is
# read before this task is queued); {0, guard record} when the guard key already existed
# (then nothing is written).
CREATE = (
    _EVENT
    + """
if ARGV[4] ~= '' then
  local existing = redis.call('GET', KEYS[#KEYS])
  if existing then return {0, existing} end
end
-- Task ids are new, so an existing hash means this very script ran already: redis-py sends
-- a command again when the connection drops before its reply, and a second run would queue
-- the task twice. (The reply is built as below, so CREATE_LIMITED extends both alike.)
local done = redis.call('HGET', KEYS[1], 'seq')
if done then
  local seq, ahead, durations = tonumber(done), 0, {}
  return {1, seq, ahead, durations}
end
local probe = tonumber(ARGV[6])
local ahead = 0
local durations = {}
if probe > 0 then
  local first = ARGV[3] == '1' and 10 or 8
  for i = first, first + probe - 2 do ahead = ahead + redis.call('XLEN', KEYS[i]) end
  durations = redis.call('LRANGE', KEYS[first + probe - 1], 0, tonumber(ARGV[7]) - 1)
end
local seq = redis.call('INCR', KEYS[6])
redis.call('HSET', KEYS[1], 'seq', seq, unpack(cjson.decode(ARGV[8])))
if ARGV[9] == '1' then redis.call('SET', KEYS[2], ARGV[2]) end
redis.call('ZADD', KEYS[3], seq, ARGV[1])
redis.call('ZADD', KEYS[4], seq, ARGV[1])
if ARGV[3] == '1' then
  redis.call('ZADD', KEYS[8], seq, ARGV[1])
  redis.call('ZADD', KEYS[9], seq, ARGV[1])
end
redis.call('XADD', KEYS[5], '*', 'task_id', ARGV[1])
if ARGV[4] ~= '' then redis.call('SET', KEYS[#KEYS], ARGV[4], 'EX', ARGV[5]) end
event(KEYS[1], KEYS[7], ARGV[10])
return {1, seq, ahead, durations}
"""
)

# KEYS: hash, input, output, attempts, events, all, expiry, blob expiry,
#       one index per status (in ARGV[9]'s order),
#       [owner's all, owner's index per status, owner's expiry] (when ARGV[11] is 1),
#       [webhook delivery hash, webhook queue] (when ARGV[12] is not '')
# ARGV: task_id, new status, now, ttl, expected statuses (comma list), has_output,
#       output, input retention, statuses (comma list: the index keys' order), final
#       statuses (comma list), has owner (0/1), webhook delivery ('' or JSON
#       {"id", "fields": [field, value, ...]}, queued due now), event channel,
#       field, value, ...
# Returns 1 on change, 0 when the current status is not an expected one, -1 if no task.
# A final status schedules the task's blobs for deletion in the blob expiry zset (input
# after the input retention, output and segments after RESULT_TTL), in the same script,
# so a crash between the status change and the deletion loses no deletion; likewise a
# webhook given here is queued only if, and exactly when, the status changes.
TRANSITION = (
    _EVENT
    + """
local cur = redis.call('HGET', KEYS[1], 'status')
if not cur then return -1 end
local allowed = false
for s in string.gmatch(ARGV[5], '[^,]+') do
  if s == cur then allowed = true end
end
if not allowed then return 0 end
local index, own, statuses = {}, {}, 0
for s in string.gmatch(ARGV[9], '[^,]+') do
  statuses = statuses + 1
  index[s] = KEYS[8 + statuses]
end
local owned = ARGV[11] == '1'
local base = 8 + statuses
if owned then
  local i = 0
  for s in string.gmatch(ARGV[9], '[^,]+') do
    i = i + 1
    own[s] = KEYS[base + 1 + i]
  end
end
local final = false
for s in string.gmatch(ARGV[10], '[^,]+') do
  if s == ARGV[2] then final = true end
end
local new = ARGV[2]
local seq = redis.call('HGET', KEYS[1], 'seq')
if cur ~= new then
  redis.call('ZREM', index[cur], ARGV[1])
  redis.call('ZADD', index[new], seq, ARGV[1])
  if owned then
    redis.call('ZREM', own[cur], ARGV[1])
    redis.call('ZADD', own[new], seq, ARGV[1])
  end
end
redis.call('HSET', KEYS[1], 'status', new, 'updated_at', ARGV[3])
if #ARGV > 13 then redis.call('HSET', KEYS[1], unpack(ARGV, 14)) end
if ARGV[6] == '1' then redis.call('SET', KEYS[3], ARGV[7]) end
-- Before the expiries below, so a stream this creates expires with the task too.
if cur ~= new then event(KEYS[1], KEYS[5], ARGV[13]) end
if final then
  local ttl = tonumber(ARGV[4])
  local t = tonumber(ARGV[3])
  local keep = tonumber(ARGV[8])
  for _, i in ipairs({1, 3, 4, 5}) do redis.call('EXPIRE', KEYS[i], ttl) end
  if keep > 0 then redis.call('EXPIRE', KEYS[2], keep) else redis.call('DEL', KEYS[2]) end
  local input = redis.call('HGET', KEYS[1], 'input_blob')
  if input then redis.call('ZADD', KEYS[8], t + keep, input) end
  for _, field in ipairs({'output_blob', 'segments_blob'}) do
    local output = redis.call('HGET', KEYS[1], field)
    if output then redis.call('ZADD', KEYS[8], t + ttl, output) end
  end
  redis.call('ZADD', KEYS[7], t + ttl, ARGV[1])
  -- Drop index entries of tasks whose data has expired (bounded work per call).
  local old = redis.call('ZRANGEBYSCORE', KEYS[7], '-inf', t, 'LIMIT', 0, 100)
  for _, id in ipairs(old) do
    for i = 6, 7 do redis.call('ZREM', KEYS[i], id) end
    for i = 9, base do redis.call('ZREM', KEYS[i], id) end
  end
  if owned then
    local expiry = KEYS[base + statuses + 2]
    redis.call('ZADD', expiry, t + ttl, ARGV[1])
    local mine = redis.call('ZRANGEBYSCORE', expiry, '-inf', t, 'LIMIT', 0, 100)
    for _, id in ipairs(mine) do
      for i = base + 1, base + statuses + 2 do redis.call('ZREM', KEYS[i], id) end
    end
  end
end
if ARGV[12] ~= '' then
  local hook = cjson.decode(ARGV[12])
  if redis.call('EXISTS', KEYS[#KEYS - 1]) == 0 then
    redis.call('HSET', KEYS[#KEYS - 1], unpack(hook['fields']))
    redis.call('ZADD', KEYS[#KEYS], ARGV[3], hook['id'])
  end
end
return 1
"""
)


def _take_token(key: str, capacity: str, rate: str, cost: str) -> str:
    """Lua that takes ``cost`` tokens from the token bucket hash ``key`` (``capacity``
    tokens, refilled ``rate`` per second from Redis' own clock), each a Lua expression for
    the value, and leaves ``allowed`` (0/1), ``tokens``, ``wait`` (seconds until the tokens
    would be there) and ``full`` (seconds until the bucket is full) set; the bucket is
    written either way."""
    return f"""
local t = redis.call('TIME')
local now = tonumber(t[1]) + tonumber(t[2]) / 1000000
local capacity = tonumber({capacity})
local rate = tonumber({rate})
local cost = tonumber({cost})
local state = redis.call('HMGET', {key}, 'tokens', 'at')
local tokens = tonumber(state[1]) or capacity
local at = tonumber(state[2]) or now
-- A clock that went back (Redis failed over to another host) refills nothing.
if now > at then tokens = math.min(capacity, tokens + (now - at) * rate) end
local allowed = 0
local wait = 0
if tokens >= cost then
  tokens = tokens - cost
  allowed = 1
else
  wait = (cost - tokens) / rate
end
local full = (capacity - tokens) / rate
redis.call('HSET', {key}, 'tokens', string.format('%.6f', tokens),
           'at', string.format('%.6f', now))
-- A bucket left alone refills completely; past that it can go.
redis.call('PEXPIRE', {key}, math.ceil(full * 1000) + 1000)
"""


# The fractions go out as strings: Lua numbers would be truncated to integers on the way.
_TOKEN_FIGURES = (
    "string.format('%.6f', tokens), string.format('%.6f', wait), string.format('%.6f', full)"
)

# Rate limits (services/gateway/ratelimit.py). KEYS: the bucket. ARGV: capacity, tokens
# per second, cost. Returns {allowed 0/1, tokens left, wait, seconds until full}.
TAKE = (
    _take_token("KEYS[1]", "ARGV[1]", "ARGV[2]", "ARGV[3]")
    + f"return {{allowed, {_TOKEN_FIGURES}}}\n"
)

# CREATE with its submission's token taken in the same script (one round trip, not two).
# KEYS: CREATE's (without a guard), then the bucket. ARGV: CREATE's, then capacity, tokens
# per second, cost (counted from the end: CREATE's own arguments can change freely).
# Returns {2, tokens, wait, full} when refused (only the bucket is
# written), else CREATE's reply followed by tokens, wait, full.
CREATE_LIMITED = (
    _take_token("KEYS[#KEYS]", "ARGV[#ARGV - 2]", "ARGV[#ARGV - 1]", "ARGV[#ARGV]")
    + f"if allowed == 0 then return {{2, {_TOKEN_FIGURES}}} end\n"
    + CREATE.replace(
        "return {1, seq, ahead, durations}",
        f"return {{1, seq, ahead, durations, {_TOKEN_FIGURES}}}",
    )
)
assert CREATE_LIMITED.count(_TOKEN_FIGURES) == 3
