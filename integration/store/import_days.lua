-- Set daily rollups from an import (a warehouse export), in one round trip per batch of rows.
-- KEYS[1] dirty accounts (sorted set, by last change), KEYS[2] known-accounts set, KEYS[4] the
-- sources' watermarks hash. ARGV[1] the time of the import (Unix seconds): each account's dirty
-- score, so it settles before it is judged. ARGV[6] the last complete day this batch shows: the
-- import's watermark moves up to it (integration/store/freshness.py).
-- ARGV[2] and ARGV[3] the ring sizes (read by ring.lua); ARGV[4] JSON list of rows with the keys
-- Python built: {account, day, meta_key, seats (or null), metrics: [[name, key, value], ...]}.
-- Values are SET, not added, so importing the same file twice changes nothing (a day in the old
-- ring is stored as its 3%-close code, the same code both times).
-- Returns how many rows were placed (a row older than the rings is skipped).

-- The newest report of seats wins; a late event or an older import row must not overwrite it.
local function keep_newest_seats(meta_key, seats, seats_ts)
  if seats == cjson.null then return end
  local stored_ts = tonumber(redis.call('HGET', meta_key, 'seats_ts') or '0')
  if seats_ts >= stored_ts then
    redis.call('HSET', meta_key, 'seats', seats, 'seats_ts', seats_ts)
  end
end

-- Widen the account's first and last day seen to include `day`.
local function note_day(meta_key, day)
  local first_day = tonumber(redis.call('HGET', meta_key, 'first_day'))
  if first_day == nil then redis.call('HSET', meta_key, 'ring_layout', ARGV[5]) end
  if first_day == nil or day < first_day then redis.call('HSET', meta_key, 'first_day', day) end
  local last_day = tonumber(redis.call('HGET', meta_key, 'last_day'))
  if last_day == nil or day > last_day then redis.call('HSET', meta_key, 'last_day', day) end
  local fed = tonumber(redis.call('HGET', meta_key, 'fed:import'))
  if fed == nil or day > fed then redis.call('HSET', meta_key, 'fed:import', day) end
end

-- KEYS[3] the rollups' layout marker, ARGV[5] the layout this script writes: unless Redis is
-- marked with it (integration/store/layout.py), nothing is written and -1 is returned. A Redis that
-- knows no account yet is marked here.
local layout = redis.call('GET', KEYS[3])
if layout == false and redis.call('EXISTS', KEYS[2]) == 0 then
  redis.call('SET', KEYS[3], ARGV[5])
elseif layout ~= ARGV[5] then
  return -1
end
local rows = cjson.decode(ARGV[4])
local placed = 0
for _, row in ipairs(rows) do
  note_day(row.meta_key, row.day)
  local any = false
  for _, metric in ipairs(row.metrics) do
    local newest = place(row.meta_key, metric[1], metric[2], row.day)
    if newest then
      set_day(metric[2], newest, row.day, metric[3])
      any = true
    end
  end
  keep_newest_seats(row.meta_key, row.seats, row.seats_ts)
  if any then placed = placed + 1 end
  redis.call('ZADD', KEYS[1], 'GT', ARGV[1], row.account)
  redis.call('SADD', KEYS[2], row.account)
end
local complete = tonumber(ARGV[6])
if #rows > 0 and complete > (tonumber(redis.call('HGET', KEYS[4], 'import')) or -1) then
  redis.call('HSET', KEYS[4], 'import', complete)
end
return placed
