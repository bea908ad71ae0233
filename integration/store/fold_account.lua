-- Fold one account's usage, from one fold of the ingest stream, in one round trip.
-- One account's keys only, all declared (one slot of a Redis Cluster): KEYS[1] its meta hash,
-- KEYS[2] its user last-seen sorted set, KEYS[3] its 30-day-active snapshots, KEYS[4] and
-- KEYS[5] its open and closed tickets, KEYS[6] its message marks, KEYS[7] the stream entries
-- folded into it; then one ring per ring metric of ARGV[4], in that order; then one day-users
-- HyperLogLog per day with users of ARGV[4], in that order. What spans accounts (dirty, known, the
-- watermark, the stream's acknowledgement) follows in fold_coordinate.lua and the stream.
-- ARGV[1] the layout the rings are written in, ARGV[2] recent days, ARGV[3] old days (ring.lua),
-- ARGV[4] JSON [groups, ring metrics, days with users, marks, entries]: the groups one per day,
-- each an array as integration/store/day_groups.py lays it out (day, last activity ts, seats
-- or null, seats ts, a flat list of (seen ts, user) pairs, a list of (metric, amount), tickets
-- opened and closed as (ts, hashed id) lists); the marks of the events (Segment messageIds,
-- usage event ids: keys.message_mark); the stream entries the events come from. One JSON
-- argument: cheap to send and to decode. ARGV[5] the lease's end (Redis ms; 0: no lease),
-- ARGV[6] entries older than this (ms) were acknowledged, ARGV[7] now (Unix seconds), ARGV[8]
-- the source, ARGV[9] yesterday's day number, ARGV[10] per-day user record TTL seconds,
-- ARGV[11] last-seen entries older than this are trimmed, ARGV[12] marks' TTL seconds,
-- ARGV[13] days in the snapshot ring, ARGV[14] tickets an account keeps (open, and closed),
-- ARGV[15] TTL seconds of the folded-entries set.
-- Returns {0} written; {1, entries} some entries were folded into this account already, {2,
-- marks} some marks are taken, {5} the lease is over (all three: nothing written; the caller
-- drops those entries' events, or those events, or renews the lease, and calls again).
-- Exactly once: an entry is recorded here in the same script that folds it, and forgotten only
-- once it is older than the oldest pending entry (acknowledged: never folded again) or after
-- the TTL. A consumer writes only within its lease, while no other consumer can claim its
-- entries, so a stale consumer never writes an entry another has folded and acknowledged.
local deadline = tonumber(ARGV[5])
if deadline > 0 then
  local now = redis.call('TIME')
  if now[1] * 1000 + math.floor(now[2] / 1000) > deadline then return {5} end
end
local CHUNK = 500
local payload = cjson.decode(ARGV[4])
local groups, metrics, days, marks, entries = payload[1], payload[2], payload[3], payload[4], payload[5]
local function present(key, members)
  local found = {}
  for start = 1, #members, CHUNK do
    local part = {unpack(members, start, math.min(start + CHUNK - 1, #members))}
    local scores = redis.call('ZMSCORE', key, unpack(part))
    for k, score in ipairs(scores) do
      if score then table.insert(found, part[k]) end
    end
  end
  return found
end
local folded = present(KEYS[7], entries)
if #folded > 0 then return {1, folded} end
local NOW = tonumber(ARGV[7])
if #marks > 0 then
  redis.call('ZREMRANGEBYSCORE', KEYS[6], '-inf', '(' .. tostring(NOW - tonumber(ARGV[12])))
  local taken = present(KEYS[6], marks)
  if #taken > 0 then return {2, taken} end
end

local meta_key, last_seen_key, snapshots_key = KEYS[1], KEYS[2], KEYS[3]
local open_key, closed_key = KEYS[4], KEYS[5]
local ring, users_of = {}, {}
for i, metric in ipairs(metrics) do ring[metric] = KEYS[7 + i] end
for i, day in ipairs(days) do users_of[day] = KEYS[7 + #metrics + i] end
local user_ttl = tonumber(ARGV[10])
local SNAPSHOT_DAYS, TICKETS_KEPT = tonumber(ARGV[13]), tonumber(ARGV[14])
local DAY = 86400
local FED = 'fed:' .. ARGV[8]
local YESTERDAY = tonumber(ARGV[9])

-- A day's users are a HyperLogLog (a set costs about 70 bytes a user), and the day's count is
-- its estimate. Measured: exact for 10 and 50 users, within 2% at 1,000 (bench/README.md).
-- Most groups bring no user new to the day: then PFADD alone answers 0 and nothing else runs.
local function count_users(active_key, last, day, users_key, seen)
  local changed = 0
  for start = 1, #seen, 2 * CHUNK do
    local users = {'PFADD', users_key}
    for k = start + 1, math.min(start + 2 * CHUNK - 1, #seen), 2 do
      table.insert(users, seen[k])
    end
    changed = changed + redis.call(unpack(users))
  end
  if changed == 0 then return end
  local count = math.min(65535, redis.call('PFCOUNT', users_key))
  -- The record lives while late events may still come (a new record gets its TTL here too).
  redis.call('EXPIRE', users_key, user_ttl)
  -- The count never goes down: a day counted already whose user record has expired (or an
  -- imported day, which has no user ids) keeps its count rather than counting users twice.
  if day > last - RECENT then
    local before = redis.call('BITFIELD', active_key, 'SET', 'u16', recent_slot(day), count)[1]
    if before > count then
      redis.call('BITFIELD', active_key, 'SET', 'u16', recent_slot(day), before)
    end
  elseif count > get_day(active_key, last, day) then
    set_day(active_key, last, day, count)
  end
end

-- The last day `last` is over: keep its 30-day active users (none of today's are in yet), when
-- the last-seen set still holds all of those 30 days (not so for a backfill of old history or
-- after a long processing lag: then the month-ago figure is unknown).
local function snapshot(last)
  if last ~= nil and (last + 1 - 30) * DAY >= tonumber(ARGV[11]) then
    local active = redis.call('ZCOUNT', last_seen_key, (last + 1 - 30) * DAY, '+inf')
    redis.call('BITFIELD', snapshots_key, 'SET', 'u32', '#' .. tostring(last % SNAPSHOT_DAYS),
      (last % 65536) * 65536 + math.min(active, 65535))
  end
  -- Once a day is enough to keep the last-seen set to the 30 days ever read.
  redis.call('ZREMRANGEBYSCORE', last_seen_key, '-inf', '(' .. ARGV[11])
end

-- A ticket is open from its latest opening until a later closing names it. Both sides keep
-- their latest time, so events that arrive out of order, or again, land right: an opening no
-- later than the ticket's last closing is old news, one after it reopens the ticket, and a
-- closing older than the latest opening leaves it open. The open set keeps the oldest
-- TICKETS_KEPT tickets (those are what long-open means), the closed set the newest.
local function tickets(opened, closed)
  for _, ticket in ipairs(opened) do
    local closed_at = tonumber(redis.call('ZSCORE', closed_key, ticket[2]))
    if closed_at == nil or ticket[1] > closed_at then
      redis.call('ZADD', open_key, 'GT', ticket[1], ticket[2])
    end
  end
  if #opened > 0 then redis.call('ZREMRANGEBYRANK', open_key, TICKETS_KEPT, -1) end
  for _, ticket in ipairs(closed) do
    local opened_at = tonumber(redis.call('ZSCORE', open_key, ticket[2]))
    if opened_at ~= nil and opened_at <= ticket[1] then redis.call('ZREM', open_key, ticket[2]) end
    redis.call('ZADD', closed_key, 'GT', ticket[1], ticket[2])
  end
  if #closed > 0 then redis.call('ZREMRANGEBYRANK', closed_key, 0, -TICKETS_KEPT - 1) end
end

-- The newest day of these events, when they bring the account history (a day before yesterday).
local brought = nil
local newest_day = groups[1] and groups[1][1]
for _, g in ipairs(groups) do
  newest_day = math.max(newest_day, g[1])
  if g[1] < YESTERDAY then brought = true end
end
if brought then brought = newest_day end

for _, g in ipairs(groups) do
  local day, last_ts, seats, seats_ts = g[1], g[2], g[3], g[4]
  local seen, counters, opened, closed = g[5], g[6], g[7], g[8]
  local fields = {'HMGET', meta_key, 'first_day', 'last_day', 'last_active', 'seats_ts',
    'last_day:active_users', FED}
  for _, counter in ipairs(counters) do table.insert(fields, 'last_day:' .. counter[1]) end
  local stored = redis.call(unpack(fields))
  local updates = {'HSET', meta_key}
  local function update(field, value) table.insert(updates, field); table.insert(updates, value) end
  local first_day, last_day = tonumber(stored[1]), tonumber(stored[2])
  if first_day == nil then update('ring_layout', ARGV[1]) end  -- integration migrate skips it
  if first_day == nil or day < first_day then update('first_day', day) end
  if last_day == nil or day > last_day then update('last_day', day) end
  if day > (tonumber(stored[6]) or -1) then update(FED, day) end
  if brought then  -- noted with the account's first group here
    update('history_at', ARGV[7]); update('history_day', brought); brought = nil
  end
  if last_ts > tonumber(stored[3] or '0') then update('last_active', last_ts) end
  -- The newest report of seats wins; a late event must not overwrite it.
  if seats ~= cjson.null and seats_ts >= tonumber(stored[4] or '0') then
    update('seats', seats); update('seats_ts', seats_ts)
  end
  if #seen > 0 then
    local active_key, last = ring['active_users'], tonumber(stored[5])
    local newest = advance(active_key, last, day)
    if newest then
      if newest ~= last then
        update('last_day:active_users', newest)
        snapshot(last)
      end
      count_users(active_key, newest, day, users_of[day], seen)
    end
    for start = 1, #seen, 2 * CHUNK do
      redis.call('ZADD', last_seen_key, 'GT', unpack(seen, start, math.min(start + 2 * CHUNK - 1, #seen)))
    end
  end
  for n, counter in ipairs(counters) do
    local metric = counter[1]
    local key = ring[metric]
    local last = tonumber(stored[6 + n])
    local newest = advance(key, last, day)
    if newest then
      if newest ~= last then update('last_day:' .. metric, newest) end
      add_day(key, newest, day, counter[2])
    end
  end
  if #updates > 2 then redis.call(unpack(updates)) end
  tickets(opened, closed)
end

for start = 1, #marks, CHUNK do
  local add = {'ZADD', KEYS[6]}
  for k = start, math.min(start + CHUNK - 1, #marks) do
    table.insert(add, NOW); table.insert(add, marks[k])
  end
  redis.call(unpack(add))
end
if #marks > 0 then redis.call('EXPIRE', KEYS[6], ARGV[12]) end
if #entries > 0 then
  local add = {'ZADD', KEYS[7]}
  for _, id in ipairs(entries) do
    table.insert(add, tonumber(string.match(id, '^%d+'))); table.insert(add, id)
  end
  redis.call(unpack(add))
  redis.call('ZREMRANGEBYSCORE', KEYS[7], '-inf', '(' .. ARGV[6])
  redis.call('EXPIRE', KEYS[7], ARGV[15])
end
return {0}
