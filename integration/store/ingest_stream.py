"""The ingest stream: accepted deliveries wait here, durably, until the fold consumer folds them.

The web edge does only what durability needs: verify, validate, then `accept` (one script on the
{ingest} tag: mark the delivery id, append the body). Folding into the rollups costs several
times that, so it runs in `integration fold` (integration/jobs/fold.py), which reads entries in a
consumer group (XREADGROUP), merges the events of the same account-day across deliveries, folds
each account in a script of its own (integration/store/folding.py), and only then acknowledges
and deletes the entries. Before it writes, `hold` renews its lease on the entries it still
holds; a dead consumer's entries are claimed by another after CLAIM_IDLE_MS (XAUTOCLAIM), and the
accounts' record of the entries folded into them keeps a second fold from counting them twice.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from redis.commands.core import Script
from redis.exceptions import ResponseError

from integration.errors import StorageUnavailableError
from integration.store import folding, keys, rollups
from integration.store.cluster import StateRedis
from integration.store.folding import Lease

logger = logging.getLogger(__name__)

_ACCEPTED, _DUPLICATE, _OUTDATED_LAYOUT = 0, 1, 3  # accept.lua's reply
# An entry its consumer has held this long unacknowledged is taken over by another: a fold of
# a full batch takes well under a second, so only a dead or stuck consumer holds one this long.
CLAIM_IDLE_MS = 5_000
# A consumer's lease on its entries ends this long before another could claim them: room for
# the clocks of a cluster's masters to differ (fold_account.lua compares its node's time).
LEASE_MARGIN_MS = 2_000
DEAD_LETTERS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted delivery: its stream id, source, when it was accepted, and its body."""

    id: str
    source: str
    accepted_at: float
    body: str


def accept(redis: StateRedis, source: str, delivery_key: str, body: str, now: datetime) -> bool:
    """Store a validated delivery for the fold, in one round trip; False for a re-delivery
    (nothing stored). A Redis holding rollups in another layout refuses it (503, so the
    sender retries once `integration migrate` has run)."""
    names = [delivery_key, keys.ingest_stream(), keys.ingest_layout()]
    args: list[str | float] = [
        rollups.DELIVERY_DEDUPE_SECONDS,
        rollups.LAYOUT,
        source,
        now.timestamp(),
        body,
    ]
    status = _accept_script(redis)(keys=names, args=args, client=redis)
    if status == _OUTDATED_LAYOUT:
        copy_layout(redis)
        status = _accept_script(redis)(keys=names, args=args, client=redis)
    if status == _OUTDATED_LAYOUT:
        raise StorageUnavailableError(rollups.OUTDATED_LAYOUT)
    return bool(status == _ACCEPTED)


def copy_layout(redis: StateRedis) -> None:
    """Copy the rollups' layout marker beside the stream once the rollups are in this
    release's layout (or marked so now: a Redis that knows no account), so accept.lua checks
    it in its own slot; refuse, as a storage error, while they are not."""
    folding.require_layout(redis)
    redis.set(keys.ingest_layout(), rollups.LAYOUT)


@cache
def _accept_script(redis: StateRedis) -> Script:
    return redis.register_script((Path(__file__).parent / "accept.lua").read_text("utf-8"))


def ensure_group(redis: StateRedis) -> None:
    """Create the stream and its consumer group (from the stream's start) unless they exist."""
    try:
        redis.xgroup_create(keys.ingest_stream(), keys.INGEST_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read(redis: StateRedis, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
    """New entries for this consumer (they stay pending on it until folded)."""
    reply: Any = redis.xreadgroup(
        keys.INGEST_GROUP, consumer, {keys.ingest_stream(): ">"}, count=count, block=block_ms
    )
    return [entry for _, found in reply or () for entry in _entries(found)]


def claim(
    redis: StateRedis, consumer: str, count: int, idle_ms: int = CLAIM_IDLE_MS
) -> list[Entry]:
    """Entries another consumer took and has not folded for `idle_ms`: it died or hangs."""
    claimed: list[Entry] = []
    start = "0-0"
    while len(claimed) < count:
        reply = redis.xautoclaim(
            keys.ingest_stream(), keys.INGEST_GROUP, consumer, idle_ms, start, count
        )
        start, found = keys.text(reply[0]), reply[1]
        claimed += _entries(found)
        if start == "0-0":
            break
    return claimed


def backlog(redis: StateRedis) -> int:
    """Entries accepted and not yet folded (read or not)."""
    return int(redis.xlen(keys.ingest_stream()))


def set_aside(redis: StateRedis, entries: Sequence[Entry], why: str) -> None:
    """Move entries the fold cannot read to the dead letters, so they block nothing."""
    pipe = redis.pipeline(transaction=True)  # one slot ({ingest}): a transaction on a cluster too
    for entry in entries:
        fields = {"s": entry.source, "t": entry.accepted_at, "b": entry.body, "why": why}
        pipe.xadd(keys.ingest_dead_letters(), fields, maxlen=DEAD_LETTERS_KEPT)  # type: ignore[arg-type]
        pipe.xack(keys.ingest_stream(), keys.INGEST_GROUP, entry.id)
        pipe.xdel(keys.ingest_stream(), entry.id)
    pipe.execute()


@dataclass(frozen=True, slots=True)
class Held:
    """What `hold` found: the entries still held, the lease on them, the layout copy."""

    ids: frozenset[str]
    lease: Lease
    layout: str


def hold(redis: StateRedis, consumer: str, ids: Sequence[str]) -> Held:
    """Renew this consumer's lease on the entries it still holds (hold.lua): the accounts take
    its writes until the lease ends, LEASE_MARGIN_MS before another consumer could claim them."""
    reply = _hold_script(redis)(
        keys=[keys.ingest_stream(), keys.ingest_layout()],
        args=[keys.INGEST_GROUP, consumer, *sorted(ids, key=stream_order)],
        client=redis,
    )
    now_ms, oldest, layout, *held = reply
    floor = keys.text(oldest).partition("-")[0]
    lease = Lease(int(now_ms) + CLAIM_IDLE_MS - LEASE_MARGIN_MS, int(floor) if floor else 0)
    return Held(frozenset(keys.text(i) for i in held), lease, keys.text(layout))


# KEYS[1] the stream, KEYS[2] the Segment user links; ARGV[1] the group, ARGV[2] the consumer,
# ARGV[3] JSON [[entry id, [user, group, ...]], ...]: the links the entries' group calls bring,
# in stream order; ARGV[4..] entry ids in stream order (one XPENDING between the first and the
# last, not one per entry). Only the entries still pending on this consumer: one another
# consumer took over is its to acknowledge once it has folded it (acknowledged sooner, the
# accounts could forget it while it folds), and its links are that consumer's to set. The links
# are set here, not before the fold: an entry folded again after its consumer died resolves its
# tracks with the links the first fold saw.
_ACKNOWLEDGE = """
local mine, done = {}, {}
local pending = redis.call('XPENDING', KEYS[1], ARGV[1], ARGV[4], ARGV[#ARGV], 1000000, ARGV[2])
for _, p in ipairs(pending) do mine[p[1]] = true end
for i = 4, #ARGV do
  if mine[ARGV[i]] then table.insert(done, ARGV[i]) end
end
for _, entry in ipairs(cjson.decode(ARGV[3])) do
  local links = entry[2]
  if mine[entry[1]] and #links > 0 then
    for start = 1, #links, 1000 do
      redis.call('HSET', KEYS[2], unpack(links, start, math.min(start + 999, #links)))
    end
  end
end
for start = 1, #done, 500 do
  local part = {unpack(done, start, math.min(start + 499, #done))}
  redis.call('XACK', KEYS[1], ARGV[1], unpack(part))
  redis.call('XDEL', KEYS[1], unpack(part))
end
return #done
"""


def acknowledge(
    redis: StateRedis,
    consumer: str,
    ids: Sequence[str],
    links: Sequence[tuple[str, Sequence[str]]] = (),
) -> int:
    """The entries are folded: set the Segment user links they bring (`links`: entry id and
    its flat user, group pairs, in stream order) and acknowledge and delete them, those this
    consumer still holds, in one script."""
    if not ids:
        return 0
    ordered = sorted(ids, key=stream_order)
    names = [keys.ingest_stream(), keys.segment_user_groups()]
    payload = json.dumps([[entry, list(pairs)] for entry, pairs in links if pairs])
    args = [keys.INGEST_GROUP, consumer, payload, *ordered]
    return int(redis.eval(_ACKNOWLEDGE, len(names), *names, *args))


# KEYS: one segment_claim per message; ARGV[1] their TTL seconds, ARGV[2..] the entry each
# message came in, in KEYS' order. A message nobody claimed is claimed for its entry; one
# claimed by the same entry (folded again after its consumer died) stays this entry's; one
# claimed by another entry, or by the release before, is a duplicate. Returns, per key, 1 for
# this entry's and 0 for a duplicate.
_CLAIM = """
local reply = {}
for i, key in ipairs(KEYS) do
  local entry = ARGV[i + 1]
  if redis.call('SET', key, entry, 'NX', 'EX', ARGV[1]) then
    reply[i] = 1
  elseif redis.call('GET', key) == entry then
    reply[i] = 1
  else
    reply[i] = 0
  end
end
return reply
"""


def claim_messages(
    redis: StateRedis, messages: Sequence[tuple[str, str]], ttl_seconds: int
) -> set[str]:
    """Claim Segment messageIds (message id, the entry it came in) across all accounts, in one
    script on the {ingest} tag, before their accounts are folded; the ids that are duplicates
    (claimed by another entry, or by the release before), whose events are dropped."""
    if not messages:
        return set()
    names = [keys.segment_claim(message) for message, _ in messages]
    reply = redis.eval(_CLAIM, len(names), *names, ttl_seconds, *(e for _, e in messages))
    return {message for (message, _), ours in zip(messages, reply, strict=True) if not int(ours)}


@cache
def _hold_script(redis: StateRedis) -> Script:
    return redis.register_script((Path(__file__).parent / "hold.lua").read_text("utf-8"))


def stream_order(entry_id: str) -> tuple[int, int]:
    """A stream id's place in the stream ("1700000000000-12" after "1700000000000-9")."""
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _entries(found: Any) -> list[Entry]:  # noqa: ANN401 - redis-py's reply
    """Entries from a stream reply; a deleted one (no fields) is skipped."""
    entries = []
    for raw_id, fields in found:
        if not fields:
            continue
        text = {keys.text(name): keys.text(value) for name, value in fields.items()}
        entries.append(Entry(keys.text(raw_id), text["s"], float(text["t"]), text["b"]))
    return entries
