-- Shared by fold_usage.lua and import_days.lua (prepended by integration/store/rollups.py).
-- Each metric is one Redis string holding two rings (layout in integration/store/rollups.py):
--   recent: RECENT_DAYS u16 counters, exact, one per day (slot day % RECENT_DAYS);
--   old:    OLD_DAYS u8 codes after them, one per older day (slot day % OLD_DAYS), each a
--           minifloat within 3% of the day's count (encode below, decoded by rollups.DECODE).
-- The meta hash keeps each metric's last day (last_day:<metric>); moving it forward moves the
-- days that leave the recent ring into the old one and zeroes the slots it passes.
-- Both scripts pass the ring sizes as ARGV[2] (recent days) and ARGV[3] (old days).
local RECENT = tonumber(ARGV[2])
local OLD = tonumber(ARGV[3])

local function recent_slot(day) return '#' .. tostring(day % RECENT) end
-- u8 slots count in bytes: the old ring starts after the recent ring's 2 * RECENT bytes.
local function old_slot(day) return '#' .. tostring(2 * RECENT + day % OLD) end

-- 0..31 stored as is; above, 4 significant bits and an exponent, rounded to nearest.
local function encode(value)
  if value < 32 then return value end
  local shift = 0
  while value >= 32 * 2 ^ shift do shift = shift + 1 end
  local mantissa = math.floor(value / 2 ^ shift + 0.5)
  if mantissa == 32 then mantissa = 16; shift = shift + 1 end
  return (shift + 1) * 16 + mantissa - 16
end

local function decode(code)
  if code < 32 then return code end
  return math.min(65535, (16 + code % 16) * 2 ^ (math.floor(code / 16) - 1))
end

-- Make `day` writable in a ring whose newest day is `last` (nil: no ring yet). Returns the ring's
-- newest day afterwards, or false when `day` is older than the ring holds.
local function advance(key, last, day)
  if last == nil then
    -- Created at full size in one piece: growing it a slot at a time lets Redis reserve up to
    -- twice the bytes (its string growth is greedy), which the memory figure would pay for.
    redis.call('SET', key, string.rep('\0', 2 * RECENT + OLD))
    return day
  end
  if day <= last - RECENT - OLD then return false end
  if day <= last then return last end
  -- Afterwards the old ring holds days day-RECENT-OLD+1..day-RECENT; the ones that were in the
  -- recent ring move there, the rest of the new ones are zero, and so are the new recent days.
  local first_old = math.max(last - RECENT, day - RECENT - OLD) + 1
  local gets = {'BITFIELD', key}
  for d = first_old, math.min(last, day - RECENT) do
    table.insert(gets, 'GET'); table.insert(gets, 'u16'); table.insert(gets, recent_slot(d))
  end
  local moved = #gets > 2 and redis.call(unpack(gets)) or {}
  local sets = {'BITFIELD', key}
  for d = first_old, day - RECENT do
    table.insert(sets, 'SET'); table.insert(sets, 'u8'); table.insert(sets, old_slot(d))
    table.insert(sets, encode(moved[d - first_old + 1] or 0))
  end
  for d = math.max(last, day - RECENT) + 1, day do
    table.insert(sets, 'SET'); table.insert(sets, 'u16'); table.insert(sets, recent_slot(d))
    table.insert(sets, 0)
  end
  redis.call(unpack(sets))
  return day
end

-- Read, add to or set one day of a ring whose newest day is `last` (after advance).
local function get_day(key, last, day)
  if day > last - RECENT then
    return redis.call('BITFIELD', key, 'GET', 'u16', recent_slot(day))[1]
  end
  return decode(redis.call('BITFIELD', key, 'GET', 'u8', old_slot(day))[1])
end

local function set_day(key, last, day, value)
  if day > last - RECENT then
    redis.call('BITFIELD', key, 'OVERFLOW', 'SAT', 'SET', 'u16', recent_slot(day), value)
  else
    redis.call('BITFIELD', key, 'SET', 'u8', old_slot(day), encode(math.min(65535, value)))
  end
end

local function add_day(key, last, day, amount)
  if day > last - RECENT then
    redis.call('BITFIELD', key, 'OVERFLOW', 'SAT', 'INCRBY', 'u16', recent_slot(day), amount)
  else
    set_day(key, last, day, get_day(key, last, day) + amount)
  end
end

-- The import's form of advance: reads and writes the metric's last day in the meta hash.
local function place(meta_key, metric, key, day)
  local field = 'last_day:' .. metric
  local last = tonumber(redis.call('HGET', meta_key, field))
  local newest = advance(key, last, day)
  if newest and newest ~= last then redis.call('HSET', meta_key, field, newest) end
  return newest
end
