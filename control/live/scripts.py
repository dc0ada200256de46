"""The admission scripts (Lua, run atomically by Redis). Every script declares all its keys,
which share the account's ``{acc_…}`` hash tag, so they run unchanged on Redis Cluster.

Keys of one account (``B`` = ``<prefix>:{<account>}``)::

    B:n      hash   counter field -> calls holding it ("in", "u:us_1", "d:did_1", "t:tr_1")
    B:live   zset   call-id -> deadline (epoch ms); past it the call gives its counters back
    B:calls  hash   call-id -> "<admitted ms> <node>\\n<field> <field> ..." (what it holds)
    B:w:<rule>:<scope>  zset  call-id -> admitted ms (a sliding window of a call_limit rule)

Time is Redis' own clock (``TIME``), so every node of a multi-node edge agrees on it.
"""

from __future__ import annotations

from control.live.client import Lua

# KEYS[1] = B:n, KEYS[2] = B:live, KEYS[3] = B:calls in every script.
_PRELUDE = """
local function now_ms()
  local t = redis.call('TIME')
  return tonumber(t[1]) * 1000 + math.floor(tonumber(t[2]) / 1000)
end
local function body_of(rec) return string.match(rec, '\\n(.*)$') or '' end
local function fields_of(rec)
  local out = {}
  for f in string.gmatch(body_of(rec), '%S+') do out[#out + 1] = f end
  return out
end
local function decrement(f)
  if string.sub(f, 1, 2) ~= 'w:' and redis.call('HINCRBY', KEYS[1], f, -1) <= 0 then
    redis.call('HDEL', KEYS[1], f)
  end
end
-- Give back everything a call holds (windows keep their entry: a rate counts attempts).
local function give_back(cid)
  local rec = redis.call('HGET', KEYS[3], cid)
  redis.call('ZREM', KEYS[2], cid)
  if not rec then return 0 end
  for _, f in ipairs(fields_of(rec)) do decrement(f) end
  redis.call('HDEL', KEYS[3], cid)
  return 1
end
local function purge(now, limit)
  local gone = redis.call('ZRANGEBYSCORE', KEYS[2], '-inf', now, 'LIMIT', 0, limit)
  for _, cid in ipairs(gone) do give_back(cid) end
  return #gone
end
"""

# ARGV: call-id, ttl ms, node, #counters, purge limit, then per counter (field, limit or -1),
# then per window KEYS[3+j] (field, max_count, period ms, hard 0/1).
# Reply: {admitted, failing dimension (1-based) or 0, retry ms, expired calls, record body,
#         #fields held before, count per dimension..., soft-exceeded dimensions...}
ADMIT = Lua(
    _PRELUDE
    + """
local cid, ttl, node, nc = ARGV[1], tonumber(ARGV[2]), ARGV[3], tonumber(ARGV[4])
local now = now_ms()
local expired = purge(now, tonumber(ARGV[5]))
local held, order, since = {}, {}, now
local rec = redis.call('HGET', KEYS[3], cid)
if rec then
  since = tonumber(string.match(rec, '^(%d+)')) or now
  for _, f in ipairs(fields_of(rec)) do held[f] = true; order[#order + 1] = f end
end
local before = #order
local fields, counts, fail, retry, soft = {}, {}, 0, 0, {}
local p = 6 + 2 * nc
for i = 1, nc do fields[i] = ARGV[4 + 2 * i] end
local values = nc > 0 and redis.call('HMGET', KEYS[1], unpack(fields)) or {}
for i = 1, nc do
  local n, limit = tonumber(values[i]) or 0, tonumber(ARGV[5 + 2 * i])
  counts[i] = n
  if fail == 0 and not held[fields[i]] and limit >= 0 and n >= limit then fail = i end
end
local periods = {}
for j = 1, #KEYS - 3 do
  local f, maxc, period = ARGV[p], tonumber(ARGV[p + 1]), tonumber(ARGV[p + 2])
  local hard = ARGV[p + 3] == '1'
  p = p + 4
  local key = KEYS[3 + j]
  redis.call('ZREMRANGEBYSCORE', key, '-inf', now - period)
  local n = redis.call('ZCARD', key)
  fields[nc + j], counts[nc + j], periods[j] = f, n, period
  if not held[f] and n >= maxc then
    if not hard then
      soft[#soft + 1] = nc + j
    elseif fail == 0 then
      fail = nc + j
      retry = period
      if maxc > 0 then
        local edge = redis.call('ZRANGE', key, n - maxc, n - maxc, 'WITHSCORES')
        retry = tonumber(edge[2]) + period - now
      end
    end
  end
end
local function reply(ok)
  local out = {ok, fail, retry, expired, rec and body_of(rec) or '', before}
  for i = 1, #counts do out[#out + 1] = counts[i] end
  for i = 1, #soft do out[#out + 1] = soft[i] end
  return out
end
if fail > 0 then return reply(0) end
local taken = {}
for i = 1, #fields do
  local f = fields[i]
  if not held[f] then
    if i <= nc then
      taken[#taken + 1] = f
      taken[#taken + 1] = counts[i] + 1
    else
      local key = KEYS[3 + i - nc]
      redis.call('ZADD', key, now, cid)
      redis.call('PEXPIRE', key, periods[i - nc])
    end
    counts[i] = counts[i] + 1
    held[f] = true
    order[#order + 1] = f
  end
end
if #taken > 0 then redis.call('HSET', KEYS[1], unpack(taken)) end
rec = since .. ' ' .. node .. '\\n' .. table.concat(order, ' ')
redis.call('HSET', KEYS[3], cid, rec)
redis.call('ZADD', KEYS[2], now + ttl, cid)
return reply(1)
"""
)

# ARGV: call-ids. Reply: how many were held.
RELEASE = Lua(
    _PRELUDE
    + """
local released = 0
for i = 1, #ARGV do released = released + give_back(ARGV[i]) end
return released
"""
)

# Undo part of an admission (a later group of the same call was rejected).
# KEYS[4..] = the windows among the fields, in order. ARGV: call-id, fields...
UNTAKE = Lua(
    _PRELUDE
    + """
local cid = ARGV[1]
local rec = redis.call('HGET', KEYS[3], cid)
if not rec then return 0 end
local drop, w = {}, 4
for i = 2, #ARGV do
  local f = ARGV[i]
  drop[f] = true
  decrement(f)
  if string.sub(f, 1, 2) == 'w:' then redis.call('ZREM', KEYS[w], cid); w = w + 1 end
end
local keep = {}
for _, f in ipairs(fields_of(rec)) do if not drop[f] then keep[#keep + 1] = f end end
if #keep == 0 then
  redis.call('HDEL', KEYS[3], cid)
  redis.call('ZREM', KEYS[2], cid)
else
  local head = string.match(rec, '^([^\\n]*)')
  redis.call('HSET', KEYS[3], cid, head .. '\\n' .. table.concat(keep, ' '))
end
return 1
"""
)

# ARGV: ttl ms, call-ids. Reply: how many are held (and got a new deadline).
REFRESH = Lua(
    _PRELUDE
    + """
local deadline, n = now_ms() + tonumber(ARGV[1]), 0
for i = 2, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], deadline, ARGV[i])
    n = n + 1
  end
end
return n
"""
)

# A call that is up but unknown here (fail-open admission, Redis restarted): take its
# counters without checking limits. ARGV: call-id, ttl ms, node, fields...  Reply: 1 adopted.
ADOPT = Lua(
    _PRELUDE
    + """
local cid = ARGV[1]
if redis.call('HEXISTS', KEYS[3], cid) == 1 then return 0 end
local now, fields = now_ms(), {}
for i = 4, #ARGV do
  fields[#fields + 1] = ARGV[i]
  if string.sub(ARGV[i], 1, 2) ~= 'w:' then redis.call('HINCRBY', KEYS[1], ARGV[i], 1) end
end
redis.call('HSET', KEYS[3], cid, now .. ' ' .. ARGV[3] .. '\\n' .. table.concat(fields, ' '))
redis.call('ZADD', KEYS[2], now + tonumber(ARGV[2]), cid)
return 1
"""
)

# Reconcile one account: release calls that are gone, push back the deadline of live ones,
# expire the overdue, then rebuild every counter from the records and report the drift.
# ARGV: ttl ms, #gone, gone call-ids..., live call-ids...
# Reply: {released, refreshed, expired, field, old, new, field, old, new, ...}
RECONCILE = Lua(
    _PRELUDE
    + """
local ttl, ngone = tonumber(ARGV[1]), tonumber(ARGV[2])
local now = now_ms()
local released, refreshed = 0, 0
for i = 3, 2 + ngone do released = released + give_back(ARGV[i]) end
for i = 3 + ngone, #ARGV do
  if redis.call('ZSCORE', KEYS[2], ARGV[i]) then
    redis.call('ZADD', KEYS[2], now + ttl, ARGV[i])
    refreshed = refreshed + 1
  end
end
local expired = purge(now, 1000000)
local want = {}
local recs = redis.call('HGETALL', KEYS[3])
for i = 1, #recs, 2 do
  if not redis.call('ZSCORE', KEYS[2], recs[i]) then
    redis.call('ZADD', KEYS[2], now + ttl, recs[i])
  end
  for _, f in ipairs(fields_of(recs[i + 1])) do
    if string.sub(f, 1, 2) ~= 'w:' then want[f] = (want[f] or 0) + 1 end
  end
end
for _, cid in ipairs(redis.call('ZRANGE', KEYS[2], 0, -1)) do
  if redis.call('HEXISTS', KEYS[3], cid) == 0 then redis.call('ZREM', KEYS[2], cid) end
end
local out, have = {released, refreshed, expired}, redis.call('HGETALL', KEYS[1])
local seen = {}
for i = 1, #have, 2 do
  local f, v = have[i], tonumber(have[i + 1])
  seen[f] = true
  if (want[f] or 0) ~= v then
    out[#out + 1] = f; out[#out + 1] = v; out[#out + 1] = want[f] or 0
  end
end
for f, v in pairs(want) do
  if not seen[f] then out[#out + 1] = f; out[#out + 1] = 0; out[#out + 1] = v end
end
redis.call('DEL', KEYS[1])
for f, v in pairs(want) do redis.call('HSET', KEYS[1], f, v) end
return out
"""
)
