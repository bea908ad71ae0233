-- Set one account's daily rollups from an import (a warehouse export), in one round trip.
-- KEYS[1] the account's meta hash, KEYS[2..] its daily rings: one account's keys only, so the
-- script runs on one node of a Redis Cluster. What spans accounts (the dirty and known sets,
-- the import's watermark, the layout check) is done by integration/store/importer.py around it.
-- ARGV[2] and ARGV[3] the ring sizes (read by ring.lua); ARGV[4] JSON list of the account's rows:
-- {day, seats (or null), seats_ts, metrics: [[name, index of its ring in KEYS, value], ...]};
-- ARGV[5] the layout the rings are written in.
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

local meta_key = KEYS[1]
local rows = cjson.decode(ARGV[4])
local placed = 0
for _, row in ipairs(rows) do
  note_day(meta_key, row.day)
  local any = false
  for _, metric in ipairs(row.metrics) do
    local key = KEYS[metric[2]]
    local newest = place(meta_key, metric[1], key, row.day)
    if newest then
      set_day(key, newest, row.day, metric[3])
      any = true
    end
  end
  keep_newest_seats(meta_key, row.seats, row.seats_ts)
  if any then placed = placed + 1 end
end
return placed
