-- Fold one webhook delivery of usage into the daily rollups, in one round trip.
-- KEYS[1] delivery dedupe key, KEYS[2] dirty-accounts set, KEYS[3] known-accounts set,
-- KEYS[4] the RQ key of the evaluation job that would pick the dirty accounts up.
-- ARGV[1] dedupe TTL seconds, ARGV[2] ring size in days, ARGV[3] per-day user-set TTL seconds,
-- ARGV[4] JSON list of groups, one per account and day, with the keys Python built (integration/keys.py).
-- ARGV[5] JSON list of per-message keys to mark as taken (Segment messageIds), ARGV[6] their TTL.
-- Returns {status, needs_job}: status 0 written, 1 a duplicate delivery, 2 a message in ARGV[5] is
-- marked already (both: nothing written); needs_job=1 means accounts are waiting and no evaluation
-- job exists, so the caller should queue one.
-- Each metric has its own ring and its own last day (meta field last_day:<metric>), so a metric
-- that starts later, or is quiet for a while, never reads another year's leftovers.
-- Nothing below can fail halfway for valid input (variadic calls are chunked under Lua's unpack
-- limit), which matters because Redis does not roll a script back: the dedupe key is set first.
-- Cluster note: the keys inside ARGV are undeclared, so this script assumes one Redis node.
local no_job = redis.call('EXISTS', KEYS[4]) == 0
local marks = cjson.decode(ARGV[5])
for start = 1, #marks, 500 do
  -- Another delivery stored one of these messages since the caller looked: write nothing, so
  -- the caller can drop it and fold the rest (a whole-delivery id would not catch it).
  if redis.call('EXISTS', unpack(marks, start, math.min(start + 499, #marks))) > 0 then
    return {2, 0}
  end
end
if redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  local waiting = redis.call('EXISTS', KEYS[2]) == 1
  return {1, (no_job and waiting) and 1 or 0}
end
local user_ttl = tonumber(ARGV[3])
local groups = cjson.decode(ARGV[4])
local CHUNK = 500
local accounts = {}

-- A day's users are a HyperLogLog, where a set costs about 70 bytes a user: sparse, it takes a
-- few bytes a user (12 KB at most); measured, it counts 10 users exactly, 50 within 1, 300
-- within 3, 1,000 within 2% (bench/README.md).
local function add_users(key, users)
  local before = redis.call('PFCOUNT', key)
  for start = 1, #users, CHUNK do
    redis.call('PFADD', key, unpack(users, start, math.min(start + CHUNK - 1, #users)))
  end
  return math.max(0, redis.call('PFCOUNT', key) - before)
end

for _, g in ipairs(groups) do
  local day = g.day
  note_day(g.meta_key, day)
  if #g.users > 0 and place(g.meta_key, 'active_users', g.active_key, day) then
    -- A day already counted whose user set has expired cannot tell new users from counted ones:
    -- a late event then adds nothing, rather than counting its user a second time.
    local counted = redis.call('BITFIELD', g.active_key, 'GET', 'u16', slot(day))[1]
    if counted == 0 or redis.call('EXISTS', g.users_key) == 1 then
      local added = add_users(g.users_key, g.users)
      redis.call('EXPIRE', g.users_key, user_ttl)
      redis.call('BITFIELD', g.active_key, 'OVERFLOW', 'SAT', 'INCRBY', 'u16', slot(day), added)
    end
  end
  for _, counter in ipairs(g.counters) do
    local metric, key, amount = counter[1], counter[2], counter[3]
    if place(g.meta_key, metric, key, day) then
      redis.call('BITFIELD', key, 'OVERFLOW', 'SAT', 'INCRBY', 'u16', slot(day), amount)
    end
  end
  if #g.users > 0 then
    for start = 1, #g.users, CHUNK do
      local seen = {'ZADD', g.last_seen_key, 'GT'}
      for i = start, math.min(start + CHUNK - 1, #g.users) do
        table.insert(seen, g.user_seen[i]); table.insert(seen, g.users[i])
      end
      redis.call(unpack(seen))
    end
    -- Only the last 30 days of users are ever read: keep the set that small.
    redis.call('ZREMRANGEBYSCORE', g.last_seen_key, '-inf', '(' .. g.forget_before)
  end
  local last_active = tonumber(redis.call('HGET', g.meta_key, 'last_active') or '0')
  if g.last_ts > last_active then redis.call('HSET', g.meta_key, 'last_active', g.last_ts) end
  keep_newest_seats(g.meta_key, g.seats, g.seats_ts)
  accounts[g.account] = true
end
for _, key in ipairs(marks) do
  redis.call('SET', key, '1', 'EX', ARGV[6])
end
local names = {}
for account in pairs(accounts) do table.insert(names, account) end
for start = 1, #names, CHUNK do
  local part = {unpack(names, start, math.min(start + CHUNK - 1, #names))}
  redis.call('SADD', KEYS[2], unpack(part))
  redis.call('SADD', KEYS[3], unpack(part))
end
return {0, no_job and 1 or 0}
