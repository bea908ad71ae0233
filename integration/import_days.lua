-- Set daily rollups from an import (a warehouse export), in one round trip per batch of rows.
-- KEYS[1] dirty-accounts set, KEYS[2] known-accounts set.
-- ARGV[2] ring size in days (read by ring.lua); ARGV[3] JSON list of rows with the keys Python
-- built: {account, day, meta_key, seats (or null), metrics: [[name, key, value], ...]}.
-- Values are SET, not added, so importing the same file twice changes nothing.
-- Returns how many rows were placed (a row older than the ring is skipped).
local rows = cjson.decode(ARGV[3])
local placed = 0
for _, row in ipairs(rows) do
  note_day(row.meta_key, row.day)
  local any = false
  for _, metric in ipairs(row.metrics) do
    if place(row.meta_key, metric[1], metric[2], row.day) then
      redis.call('BITFIELD', metric[2], 'OVERFLOW', 'SAT', 'SET', 'u16', slot(row.day), metric[3])
      any = true
    end
  end
  keep_newest_seats(row.meta_key, row.seats, row.seats_ts)
  if any then placed = placed + 1 end
  redis.call('SADD', KEYS[1], row.account)
  redis.call('SADD', KEYS[2], row.account)
end
return placed
