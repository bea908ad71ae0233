-- Fold one webhook delivery of usage into the daily rollups, in one round trip.
-- KEYS[1] delivery dedupe key, KEYS[2] dirty-accounts set.
-- ARGV[1] dedupe TTL seconds, ARGV[2] ring size in days, ARGV[3] per-day user-set TTL seconds,
-- ARGV[4] JSON list of groups, one per account and day, with the keys Python built (integration/keys.py).
-- Returns {duplicate, dirty_was_empty}: duplicate=1 means nothing was written.
-- Cluster note: the keys inside ARGV are undeclared, so this script assumes one Redis node.
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  return {1, 0}
end
local ring = tonumber(ARGV[2])
local user_ttl = tonumber(ARGV[3])
local groups = cjson.decode(ARGV[4])
local dirty_was_empty = redis.call('EXISTS', KEYS[2]) == 0 and 1 or 0

local function slot(day) return '#' .. tostring(day % ring) end

local function zero_days(metric_keys, from_day, to_day)
  for _, key in ipairs(metric_keys) do
    local args = {'BITFIELD', key}
    for d = from_day, to_day do
      table.insert(args, 'SET'); table.insert(args, 'u16'); table.insert(args, slot(d)); table.insert(args, 0)
    end
    redis.call(unpack(args))
  end
end

for _, g in ipairs(groups) do
  local day = g.day
  local metric_keys = {g.active_key, g.events_key}
  local last_day = tonumber(redis.call('HGET', g.meta_key, 'last_day'))
  local writable = true
  if last_day == nil then
    zero_days(metric_keys, day, day)
    redis.call('HSET', g.meta_key, 'first_day', day, 'last_day', day)
  elseif day > last_day then
    zero_days(metric_keys, math.max(last_day + 1, day - ring + 1), day)
    redis.call('HSET', g.meta_key, 'last_day', day)
  elseif day <= last_day - ring then
    writable = false
  end
  if writable then
    local first_day = tonumber(redis.call('HGET', g.meta_key, 'first_day'))
    if day < first_day then redis.call('HSET', g.meta_key, 'first_day', day) end
    local added = redis.call('SADD', g.users_key, unpack(g.users))
    redis.call('EXPIRE', g.users_key, user_ttl)
    redis.call('BITFIELD', g.active_key, 'OVERFLOW', 'SAT', 'INCRBY', 'u16', slot(day), added)
    redis.call('BITFIELD', g.events_key, 'OVERFLOW', 'SAT', 'INCRBY', 'u16', slot(day), g.events)
  end
  for i, user in ipairs(g.users) do
    redis.call('ZADD', g.last_seen_key, 'GT', g.user_seen[i], user)
  end
  local last_active = tonumber(redis.call('HGET', g.meta_key, 'last_active') or '0')
  if g.last_ts > last_active then redis.call('HSET', g.meta_key, 'last_active', g.last_ts) end
  if g.seats ~= cjson.null then redis.call('HSET', g.meta_key, 'seats', g.seats) end
  redis.call('SADD', KEYS[2], g.account)
end
return {0, dirty_was_empty}
