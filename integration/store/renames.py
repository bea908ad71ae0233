"""Moving keys written under their names before the hash tags (until 2026-12) to the new ones.

The coordination keys (dirty, processing, holders, leases, last run, known accounts,
watermarks, when ticket closings began) now share the `{ci}` tag, held tasks the `{held}` tag,
and the ingest stream, its dead letters and delivery marks the `{ingest}` tag, so that each
script or transaction over them keeps to one slot of a Redis Cluster. Data written before sits
under the old names on a single Redis: `integration migrate` moves it
(integration/store/layout.py), and the sweep does the same every few seconds
(jobs/evaluate.py), so work a process of the previous release leaves there is still found
(an entry its web app appends to the old stream is moved to the new one, unfolded). The
delivery marks, one key per delivery of the last week, are moved by `integration migrate`
alone (adopt_delivery_marks: a SCAN), as are the global Segment message marks, which become
{ingest} claims (adopt_message_marks). The Segment user links move under `{ingest}` too (the
fold sets them as it acknowledges). All are safe to repeat: with nothing under an old name
they change nothing.

A cluster never holds old names (state is moved to one after `integration migrate`), and a
script naming them there would cross slots, so on a cluster this does nothing.
"""

from __future__ import annotations

from typing import cast

from redis import Redis

from integration.store import keys
from integration.store.cluster import is_cluster

HELD_CHUNK = 500

# KEYS: the plain dirty set of releases before 2026-11, the dirty sorted set, then pairs (old
# name, new name). A name only under its old name is renamed (a stream keeps its consumer group
# and pending entries); one under both is merged into the new: sorted sets keep each member's
# higher score, sets all members, hashes the new entry, a stream gets the old one's entries
# appended (each still there is unfolded: the fold deletes what it acknowledges); a string keeps
# the new value (when the last run took accounts), or the lower for the names in ARGV (when
# ticket closings began).
_ADOPT = """
local moved = 0
local lower = {}
for _, name in ipairs(ARGV) do lower[name] = true end
if redis.call('TYPE', KEYS[1])['ok'] == 'set' then
  for _, account in ipairs(redis.call('SMEMBERS', KEYS[1])) do
    redis.call('ZADD', KEYS[2], 'NX', 0, account)
  end
  redis.call('DEL', KEYS[1])
  moved = moved + 1
end
for i = 3, #KEYS, 2 do
  local old, new = KEYS[i], KEYS[i + 1]
  local kind = redis.call('TYPE', old)['ok']
  if kind ~= 'none' then
    if redis.call('EXISTS', new) == 0 then
      redis.call('RENAME', old, new)
    elseif kind == 'zset' then
      redis.call('ZUNIONSTORE', new, 2, new, old, 'AGGREGATE', 'MAX')
      redis.call('DEL', old)
    elseif kind == 'hash' then
      local entries = redis.call('HGETALL', old)
      for j = 1, #entries, 2 do redis.call('HSETNX', new, entries[j], entries[j + 1]) end
      redis.call('DEL', old)
    elseif kind == 'set' then
      redis.call('SUNIONSTORE', new, new, old)
      redis.call('DEL', old)
    elseif kind == 'stream' then
      for _, entry in ipairs(redis.call('XRANGE', old, '-', '+')) do
        redis.call('XADD', new, '*', unpack(entry[2]))
      end
      redis.call('DEL', old)
    elseif lower[new] and tonumber(redis.call('GET', old)) < tonumber(redis.call('GET', new)) then
      redis.call('RENAME', old, new)
    else
      redis.call('DEL', old)
    end
    moved = moved + 1
  end
end
return moved
"""
# KEYS: old tasks_held, new tasks_held, then per member of ARGV (old task key, new task key).
# A member moves with its task, so no held task is ever listed without its body.
_ADOPT_HELD = """
local moved = 0
for i, member in ipairs(ARGV) do
  local score = redis.call('ZSCORE', KEYS[1], member)
  if score then
    local old_task, new_task = KEYS[1 + 2 * i], KEYS[2 + 2 * i]
    if redis.call('EXISTS', old_task) == 1 then redis.call('RENAME', old_task, new_task) end
    redis.call('ZADD', KEYS[2], 'NX', score, member)
    redis.call('ZREM', KEYS[1], member)
    moved = moved + 1
  end
end
return moved
"""


def adopt_untagged_keys(redis: Redis) -> int:
    """Move what sits under the names before the tags to the tagged ones; returns how many
    keys and held tasks moved (0 on a cluster, and once nothing is left to move)."""
    if is_cluster(redis):
        return 0
    names = [keys.legacy_dirty_accounts(), keys.dirty_accounts()]
    for old, new in (keys.untagged_names() | keys.untagged_ingest_names()).items():
        names += [old, new]
    moved = int(redis.eval(_ADOPT, len(names), *names, keys.ticket_closings_seen()))
    return moved + _adopt_held_tasks(redis)


# KEYS: pairs (old delivery mark, its name now). RENAME keeps the mark's time to live; a mark
# already under its new name (the same delivery accepted again meanwhile) stands.
_ADOPT_MARKS = """
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('DEL', KEYS[i])
  elseif redis.call('EXISTS', KEYS[i]) == 1 then  -- it may have expired since the SCAN
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
  end
end
return #KEYS / 2
"""


def adopt_delivery_marks(redis: Redis) -> int:
    """Move the delivery marks written before the {ingest} tag to their tagged names, so a
    sender retrying a delivery the previous release took is still told it is a duplicate; how
    many moved (0 on a cluster). A SCAN of the keyspace: `integration migrate` runs it once."""
    if is_cluster(redis):
        return 0
    moved = 0
    found = redis.scan_iter(match=keys.untagged_delivery_seen_match(), count=1000)
    while chunk := [keys.text(name) for _, name in zip(range(HELD_CHUNK), found, strict=False)]:
        names = [part for old in chunk for part in (old, keys.tagged_delivery_seen(old))]
        moved += int(redis.eval(_ADOPT_MARKS, len(names), *names))
    return moved


# KEYS: pairs (old global Segment message mark, its claim's name now); ARGV[1] the value of a
# claim by the release before (taken: no entry of this stream holds it). RENAME keeps the mark's
# time to live, the SET with KEEPTTL gives it the claim's meaning; a claim already set (the
# message folded again meanwhile) stands.
_ADOPT_MESSAGE_MARKS = """
local moved = 0
for i = 1, #KEYS, 2 do
  if redis.call('EXISTS', KEYS[i + 1]) == 1 then
    redis.call('DEL', KEYS[i])
  elseif redis.call('EXISTS', KEYS[i]) == 1 then  -- it may have expired since the SCAN
    redis.call('RENAME', KEYS[i], KEYS[i + 1])
    redis.call('SET', KEYS[i + 1], ARGV[1], 'KEEPTTL')
    moved = moved + 1
  end
end
return moved
"""


def adopt_message_marks(redis: Redis) -> int:
    """Carry the global Segment message marks of the release before (`ci:msg:segment:*`) over
    to the {ingest} claims, as claimed by that release, each with its time to live, so a message
    it stored and Segment re-sends within the dedupe window still counts once; how many moved
    (0 on a cluster). Its usage `event_id` marks (`ci:msg:usage:*`) were global too and name no
    account, so they cannot become the per-account marks: they are left to expire. A SCAN of the
    keyspace: `integration migrate` runs it once."""
    if is_cluster(redis):
        return 0
    moved = 0
    found = redis.scan_iter(match=keys.untagged_segment_mark_match(), count=1000)
    while chunk := [keys.text(name) for _, name in zip(range(HELD_CHUNK), found, strict=False)]:
        names = [part for old in chunk for part in (old, keys.tagged_segment_mark(old))]
        moved += int(
            redis.eval(_ADOPT_MESSAGE_MARKS, len(names), *names, keys.CLAIMED_BY_EARLIER_RELEASE)
        )
    return moved


def _adopt_held_tasks(redis: Redis) -> int:
    """Held tasks, HELD_CHUNK at a time; bounded by the count at the start, so a process of
    the previous release still holding tasks there cannot keep this going (the next call
    moves what it added)."""
    old = keys.untagged_tasks_held()
    passes = int(redis.zcard(old)) // HELD_CHUNK + 1
    moved = 0
    for _ in range(passes):
        chunk = cast("list[bytes]", redis.zrange(old, 0, HELD_CHUNK - 1))
        members = [keys.text(member) for member in chunk]
        if not members:
            break
        names = [old, keys.tasks_held()]
        for member in members:
            names += [keys.untagged_held_task(member), keys.held_task(member)]
        moved += int(redis.eval(_ADOPT_HELD, len(names), *names, *members))
    return moved
