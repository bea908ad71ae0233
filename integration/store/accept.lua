-- Accept one webhook delivery durably, in one round trip: mark its id, and only if it is new,
-- append its validated body to the ingest stream (the fold consumer folds it into the rollups).
-- A re-delivery never enters the stream, and a marked delivery was always appended (one script:
-- no other command runs between the look, the append and the mark).
-- All its keys share the {ingest} tag (one slot of a Redis Cluster): KEYS[1] the delivery's
-- dedupe key, KEYS[2] the ingest stream, KEYS[3] the copy of the rollups' layout marker kept
-- beside the stream (integration/store/ingest_stream.py writes it).
-- ARGV[1] dedupe TTL seconds, ARGV[2] the layout this release writes, ARGV[3] the source
-- (usage, segment), ARGV[4] when it was accepted (Unix seconds), ARGV[5] the body.
-- Returns 0 accepted, 1 a duplicate delivery, 3 the copy is missing or names another layout
-- (nothing written: the caller looks at the marker itself, and refuses, so the sender retries
-- once `integration migrate` has run, or copies it and tries again).
if redis.call('GET', KEYS[3]) ~= ARGV[2] then return 3 end
-- The append comes before the mark: Redis does not roll a script back, and should the append
-- fail (the 503 tells the sender to retry), no mark may be left to call the retry a duplicate.
if redis.call('EXISTS', KEYS[1]) == 1 then return 1 end
redis.call('XADD', KEYS[2], '*', 's', ARGV[3], 't', ARGV[4], 'b', ARGV[5])
redis.call('SET', KEYS[1], '1', 'EX', ARGV[1])
return 0
