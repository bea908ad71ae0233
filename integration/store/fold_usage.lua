-- Fold one webhook delivery of usage into the daily rollups, in one round trip.
-- KEYS[1] delivery dedupe key, KEYS[2] dirty accounts (sorted set, by last change), KEYS[3]
-- known-accounts set,
-- KEYS[4] the RQ key of the evaluation job that would pick the dirty accounts up, KEYS[7] that
-- of the next interval's job.
-- ARGV[1] dedupe TTL seconds, ARGV[2] recent days, ARGV[3] old days (ring.lua),
-- ARGV[4] per-day user record TTL seconds, ARGV[5] last-seen entries older than this are trimmed,
-- ARGV[6] TTL of message marks, ARGV[7] JSON list of message keys to mark taken (Segment
-- messageIds, usage event ids), ARGV[8] JSON list of groups, one per account and day, each an array as
-- integration/store/rollups.py lays it out: account, the account's key prefix, day, last activity ts,
-- seats (or null), seats ts, a flat list of (seen ts, user) pairs, a list of (metric, amount),
-- and tickets opened and closed as (ts, hashed id) lists. Arrays, not objects: one JSON
-- argument is cheap for the client to send, where a thousand small arguments cost it
-- milliseconds. ARGV[9] days in the snapshot ring, ARGV[10] how many tickets an account keeps
-- (open, and closed), ARGV[12] the key marking that closing events arrive at all,
-- ARGV[11] JSON of the key suffixes that follow an account's prefix (integration/store/keys.py).
-- Returns {status, needs_job, taken}: status 0 written, 1 a duplicate delivery, 2 messages among
-- the marks are marked already (taken lists them), 3 the rollups are in another layout, 4 stream
-- entries are lost to another consumer (taken lists them) (all but 0:
-- nothing written); needs_job=1 means accounts are waiting and no evaluation job exists, so the
-- caller should queue one; 2 means this interval's job exists (it may have run already) and the
-- next one does not, so the caller should schedule that one: a job always follows a delivery.
-- KEYS[6] the sources' watermarks hash, ARGV[14] this delivery's source (usage, segment),
-- ARGV[15] the time of the delivery (Unix seconds), ARGV[16] the last complete day it shows (its
-- newest event day minus one). The watermark only moves forward; each account's meta keeps the
-- newest day each source delivered for it (fed:<source>), and its dirty score is the time.
-- A delivery bringing an account a day older than yesterday (ARGV[17]) also notes when history
-- last came for it (history_at) and the newest day this delivery brought it (history_day): an
-- account still receiving a backfill is judged only through that day, even when live usage has
-- brought it newer days already. This delivery's newest, not the newest ever: the days an
-- earlier delivery brought must not stand for a backfill still on days months old.
-- ARGV[17] yesterday's day number by the web clock: a delivery bringing an account a day older
-- than that (a backfill, a replay, late data) moves its dirty score to now, so it waits until
-- that history has all arrived; a live one (today's or yesterday's events) keeps the time the
-- account first became dirty (ZADD NX), so an account busier than the settle time still settles.
-- A group costs one HMGET and one HSET of the meta hash, one BITFIELD per counter, and for its
-- users a PFADD and a ZADD (plus a PFCOUNT and a BITFIELD when someone is new that day): ingest
-- speed is mostly the length of this list.
-- Nothing below can fail halfway for valid input (variadic calls are chunked under Lua's unpack
-- limit), which matters because Redis does not roll a script back: the dedupe key is set first.
-- Cluster note: the keys inside ARGV are undeclared, so this script assumes one Redis node.
-- KEYS[5] the rollups' layout marker, ARGV[13] the layout this script writes: unless Redis is
-- marked with it (integration/store/layout.py), nothing is written (status 3). A Redis that knows no
-- account (a new install, or one emptied under running processes) is marked here.
local layout = redis.call('GET', KEYS[5])
if layout == false and redis.call('EXISTS', KEYS[3]) == 0 then
  redis.call('SET', KEYS[5], ARGV[13])
elseif layout ~= ARGV[13] then
  return {3, 0}
end
-- KEYS[8] the ingest stream, ARGV[18] its consumer group, ARGV[19] this consumer, ARGV[20] JSON
-- list of the stream entries this fold holds (integration/store/ingest_stream.py): any of them no
-- longer pending on this consumer (another claimed it) means nothing is written (status 4, the
-- third reply lists them); else they are acknowledged and deleted at the end, in this script, so
-- a consumer dying at any point never has an entry folded twice. With entries, KEYS[1] is '-':
-- their delivery ids were deduplicated when they were accepted.
local entries = cjson.decode(ARGV[20])
local lost = {}
for _, id in ipairs(entries) do
  if #redis.call('XPENDING', KEYS[8], ARGV[18], id, id, 1, ARGV[19]) == 0 then
    table.insert(lost, id)
  end
end
if #lost > 0 then return {4, 0, lost} end
local needs_job = 0
if redis.call('EXISTS', KEYS[4]) == 0 then
  needs_job = 1
elseif redis.call('EXISTS', KEYS[7]) == 0 then
  needs_job = 2
end
local CHUNK = 500
local marks = cjson.decode(ARGV[7])
local taken = {}
for start = 1, #marks, CHUNK do
  -- Another delivery stored some of these messages: write nothing, so the caller can drop them
  -- and fold the rest (a whole-delivery id would not catch an event re-sent in a new delivery).
  if redis.call('EXISTS', unpack(marks, start, math.min(start + CHUNK - 1, #marks))) > 0 then
    for k = start, math.min(start + CHUNK - 1, #marks) do
      if redis.call('EXISTS', marks[k]) == 1 then table.insert(taken, marks[k]) end
    end
  end
end
if #taken > 0 then return {2, 0, taken} end
if KEYS[1] ~= '-' and redis.call('SET', KEYS[1], '1', 'NX', 'EX', ARGV[1]) == false then
  local waiting = redis.call('EXISTS', KEYS[2]) == 1
  return {1, waiting and needs_job or 0}
end
local user_ttl = tonumber(ARGV[4])
local SNAPSHOT_DAYS, TICKETS_KEPT = tonumber(ARGV[9]), tonumber(ARGV[10])
local DAY = 86400
local SUFFIX = cjson.decode(ARGV[11])
local SOURCE, NOW, FED = ARGV[14], ARGV[15], 'fed:' .. ARGV[14]
local accounts, history = {}, {}
local YESTERDAY = tonumber(ARGV[17])

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

local groups = cjson.decode(ARGV[8])
-- The newest day this delivery brings each account that it brings history.
local brought, newest_day = {}, {}
for _, g in ipairs(groups) do
  newest_day[g[1]] = math.max(newest_day[g[1]] or g[3], g[3])
  if g[3] < YESTERDAY then brought[g[1]] = true end
end
for account in pairs(brought) do brought[account] = newest_day[account] end

for _, g in ipairs(groups) do
  local account, prefix, day, last_ts, seats, seats_ts = g[1], g[2], g[3], g[4], g[5], g[6]
  local seen, counters, opened, closed = g[7], g[8], g[9], g[10]
  local meta_key, daily = prefix .. SUFFIX.meta, prefix .. SUFFIX.daily
  local active_key, last_seen_key = daily .. 'active_users', prefix .. SUFFIX.user_last_seen

  local fields = {'HMGET', meta_key, 'first_day', 'last_day', 'last_active', 'seats_ts',
    'last_day:active_users', FED}
  for _, counter in ipairs(counters) do table.insert(fields, 'last_day:' .. counter[1]) end
  local stored = redis.call(unpack(fields))
  local updates = {'HSET', meta_key}
  local function update(field, value) table.insert(updates, field); table.insert(updates, value) end
  local first_day, last_day = tonumber(stored[1]), tonumber(stored[2])
  if first_day == nil then update('ring_layout', ARGV[13]) end  -- integration migrate skips it
  if first_day == nil or day < first_day then update('first_day', day) end
  if last_day == nil or day > last_day then update('last_day', day) end
  if day > (tonumber(stored[6]) or -1) then update(FED, day) end
  if brought[account] then  -- noted with the account's first group here
    update('history_at', NOW); update('history_day', brought[account]); brought[account] = nil
  end
  if last_ts > tonumber(stored[3] or '0') then update('last_active', last_ts) end
  -- The newest report of seats wins; a late event must not overwrite it.
  if seats ~= cjson.null and seats_ts >= tonumber(stored[4] or '0') then
    update('seats', seats); update('seats_ts', seats_ts)
  end

  if #seen > 0 then
    local last = tonumber(stored[5])
    local newest = advance(active_key, last, day)
    if newest then
      if newest ~= last then
        update('last_day:active_users', newest)
        -- The day `last` is over: keep its 30-day active users (none of today's are in yet),
        -- when the last-seen set still holds all of those 30 days (not so for a backfill of
        -- old history or after a long processing lag: then the month-ago figure is unknown).
        if last ~= nil and (last + 1 - 30) * DAY >= tonumber(ARGV[5]) then
          local active = redis.call('ZCOUNT', last_seen_key, (last + 1 - 30) * DAY, '+inf')
          redis.call('BITFIELD', prefix .. SUFFIX.active_30d, 'SET', 'u32', '#' .. tostring(last % SNAPSHOT_DAYS),
            (last % 65536) * 65536 + math.min(active, 65535))
        end
        -- Once a day is enough to keep the last-seen set to the 30 days ever read.
        redis.call('ZREMRANGEBYSCORE', last_seen_key, '-inf', '(' .. ARGV[5])
      end
      count_users(active_key, newest, day, prefix .. SUFFIX.day_users .. day, seen)
    end
    for start = 1, #seen, 2 * CHUNK do
      redis.call('ZADD', last_seen_key, 'GT', unpack(seen, start, math.min(start + 2 * CHUNK - 1, #seen)))
    end
  end

  for n, counter in ipairs(counters) do
    local metric = counter[1]
    local key = daily .. metric
    local last = tonumber(stored[6 + n])
    local newest = advance(key, last, day)
    if newest then
      if newest ~= last then update('last_day:' .. metric, newest) end
      add_day(key, newest, day, counter[2])
    end
  end
  if #updates > 2 then redis.call(unpack(updates)) end
  -- A ticket is open from its latest opening until a later closing names it. Both sides keep
  -- their latest time, so events that arrive out of order, or again, land right: an opening no
  -- later than the ticket's last closing is old news, one after it reopens the ticket, and a
  -- closing older than the latest opening leaves it open. The open set keeps the oldest
  -- TICKETS_KEPT tickets (those are what long-open means), the closed set the newest.
  local open_key, closed_key = prefix .. SUFFIX.open_tickets, prefix .. SUFFIX.closed_tickets
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
  if #closed > 0 then
    redis.call('ZREMRANGEBYRANK', closed_key, 0, -TICKETS_KEPT - 1)
    redis.call('SET', ARGV[12], closed[1][1], 'NX')  -- when closings began to arrive
  end
  accounts[account] = true
  if day < YESTERDAY then history[account] = true end
end

for _, key in ipairs(marks) do
  redis.call('SET', key, '1', 'EX', ARGV[6])
end
local names = {}
for account in pairs(accounts) do table.insert(names, account) end
for start = 1, #names, CHUNK do
  local part = {unpack(names, start, math.min(start + CHUNK - 1, #names))}
  local moved, kept = {'ZADD', KEYS[2], 'GT'}, {'ZADD', KEYS[2], 'NX'}
  for _, account in ipairs(part) do
    local dirty = history[account] and moved or kept
    table.insert(dirty, NOW); table.insert(dirty, account)
  end
  if #moved > 3 then redis.call(unpack(moved)) end
  if #kept > 3 then redis.call(unpack(kept)) end
  redis.call('SADD', KEYS[3], unpack(part))
end
for start = 1, #entries, CHUNK do
  local part = {unpack(entries, start, math.min(start + CHUNK - 1, #entries))}
  redis.call('XACK', KEYS[8], ARGV[18], unpack(part))
  redis.call('XDEL', KEYS[8], unpack(part))
end
local complete = tonumber(ARGV[16])
if #names > 0 and complete > (tonumber(redis.call('HGET', KEYS[6], SOURCE)) or -1) then
  redis.call('HSET', KEYS[6], SOURCE, complete)
end
return {0, needs_job}
