-- Shared by fold_usage.lua and import_days.lua (prepended by integration/rollups.py).
-- Each metric is a string of u16 counters, one per day in a ring of RING slots; the meta hash
-- keeps each metric's last day (last_day:<metric>), so a slot is zeroed before it is reused.
-- Both scripts pass the ring size as ARGV[2].
local RING = tonumber(ARGV[2])

local function slot(day) return '#' .. tostring(day % RING) end

-- Make `day` writable in this metric's ring: zero the slots it moves past. False when too old.
local function place(meta_key, metric, key, day)
  local field = 'last_day:' .. metric
  local last = tonumber(redis.call('HGET', meta_key, field))
  if last ~= nil and day <= last - RING then return false end
  if last == nil or day > last then
    local from = last == nil and day or math.max(last + 1, day - RING + 1)
    local args = {'BITFIELD', key}
    for d = from, day do
      table.insert(args, 'SET'); table.insert(args, 'u16'); table.insert(args, slot(d)); table.insert(args, 0)
    end
    redis.call(unpack(args))
    redis.call('HSET', meta_key, field, day)
  end
  return true
end


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
  if first_day == nil or day < first_day then redis.call('HSET', meta_key, 'first_day', day) end
  local last_day = tonumber(redis.call('HGET', meta_key, 'last_day'))
  if last_day == nil or day > last_day then redis.call('HSET', meta_key, 'last_day', day) end
end
