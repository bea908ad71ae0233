-- Before a fold writes anything: which of its stream entries this consumer still holds, and a
-- lease on them. KEYS[1] the ingest stream, KEYS[2] the layout copy beside it (one slot:
-- {ingest}). ARGV[1] the consumer group, ARGV[2] this consumer, ARGV[3..] the entry ids, in
-- stream order.
-- Each entry still pending on this consumer is claimed again by it (XCLAIM, JUSTID: its idle
-- time starts over), so no other consumer can take it (XAUTOCLAIM waits for CLAIM_IDLE_MS of
-- idleness) until the lease the caller derives from the time returned here runs out.
-- Returns {Redis time in ms, the oldest pending entry id (or ''), the layout copy (or ''),
-- the entries still held...}. Every entry older than the oldest pending one was acknowledged,
-- so it is never folded again: the accounts may forget they folded it.
local now = redis.call('TIME')
local held = {}
if #ARGV > 2 then
  -- One look at this consumer's pending entries between the first and the last id (ARGV is in
  -- stream order), not one per entry: a fold holds a hundred.
  local mine = {}
  for _, p in ipairs(redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[3], ARGV[#ARGV], 1000000, ARGV[2])) do
    mine[p[1]] = true
  end
  for i = 3, #ARGV do
    if mine[ARGV[i]] then table.insert(held, ARGV[i]) end
  end
  for start = 1, #held, 500 do
    local claim = {'XCLAIM', KEYS[1], ARGV[1], ARGV[2], 0}
    for k = start, math.min(start + 499, #held) do table.insert(claim, held[k]) end
    table.insert(claim, 'JUSTID')
    redis.call(unpack(claim))
  end
end
local oldest = redis.call('XPENDING', KEYS[1], ARGV[1])[2]
local reply = {now[1] * 1000 + math.floor(now[2] / 1000), oldest or '',
  redis.call('GET', KEYS[2]) or ''}
for _, id in ipairs(held) do table.insert(reply, id) end
return reply
