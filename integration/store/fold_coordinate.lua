-- After a fold's accounts are written (fold_account.lua), what spans them, in one round trip
-- on the {ci} tag (one slot of a Redis Cluster). Safe to repeat: a fold taken over after its
-- consumer died runs it again for accounts the first try wrote.
-- KEYS[1] dirty accounts (sorted set, by last change), KEYS[2] known accounts, KEYS[3] the
-- sources' watermarks, KEYS[4] when ticket closings began to arrive.
-- ARGV[1] now (Unix seconds), ARGV[2] the source, ARGV[3] the last complete day these events
-- show (their newest day less one), ARGV[4] the first closing's time ('' for none), ARGV[5]
-- JSON list of accounts that got live usage only (today's or yesterday's: their dirty score
-- stays when they first became dirty, ZADD NX, so an account busier than the settle time still
-- settles), ARGV[6] JSON list of accounts that got history (an older day: their score moves to
-- now, ZADD GT, so a backfill waits until it has all arrived).
local CHUNK = 500
local function mark(accounts, how)
  for start = 1, #accounts, CHUNK do
    local part = {unpack(accounts, start, math.min(start + CHUNK - 1, #accounts))}
    local dirty = {'ZADD', KEYS[1], how}
    for _, account in ipairs(part) do table.insert(dirty, ARGV[1]); table.insert(dirty, account) end
    redis.call(unpack(dirty))
    redis.call('SADD', KEYS[2], unpack(part))
  end
end
local live, history = cjson.decode(ARGV[5]), cjson.decode(ARGV[6])
mark(live, 'NX')
mark(history, 'GT')
if ARGV[4] ~= '' then redis.call('SET', KEYS[4], ARGV[4], 'NX') end
local complete = tonumber(ARGV[3])
if #live + #history > 0 and complete > (tonumber(redis.call('HGET', KEYS[3], ARGV[2])) or -1) then
  redis.call('HSET', KEYS[3], ARGV[2], complete)
end
return 0
