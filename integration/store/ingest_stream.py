"""The ingest stream: accepted deliveries wait here, durably, until the fold consumer folds them.

The web edge does only what durability needs: verify, validate, then `accept` (one script: mark
the delivery id, append the body). Folding into the rollups costs several times that, so it
runs in `integration fold` (integration/jobs/fold.py), which reads entries in a consumer group
(XREADGROUP), merges the events of the same account-day across deliveries, and acknowledges
and deletes the entries in the very script that folds them (fold_usage.lua): an entry is folded
once even when its consumer dies at any point, and a dead consumer's entries are claimed by
another after CLAIM_IDLE_MS (XAUTOCLAIM).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import datetime
from functools import cache
from pathlib import Path
from typing import Any

from redis import Redis
from redis.commands.core import Script
from redis.exceptions import ResponseError

from integration.errors import StorageUnavailableError
from integration.store import keys, rollups

logger = logging.getLogger(__name__)

_ACCEPTED, _DUPLICATE, _OUTDATED_LAYOUT = 0, 1, 3  # accept.lua's reply
# An entry its consumer has held this long unacknowledged is taken over by another: a fold of
# a full batch takes well under a second, so only a dead or stuck consumer holds one this long.
CLAIM_IDLE_MS = 5_000
DEAD_LETTERS_KEPT = 10_000


@dataclass(frozen=True, slots=True)
class Entry:
    """One accepted delivery: its stream id, source, when it was accepted, and its body."""

    id: str
    source: str
    accepted_at: float
    body: str


def accept(redis: Redis, source: str, delivery_key: str, body: str, now: datetime) -> bool:
    """Store a validated delivery for the fold, in one round trip; False for a re-delivery
    (nothing stored). A Redis holding rollups in another layout refuses it (503, so the
    sender retries once `integration migrate` has run)."""
    status = _accept_script(redis)(
        keys=[delivery_key, keys.ingest_stream(), keys.rollups_layout(), keys.known_accounts()],
        args=[rollups.DELIVERY_DEDUPE_SECONDS, rollups.LAYOUT, source, now.timestamp(), body],
        client=redis,
    )
    if status == _OUTDATED_LAYOUT:
        raise StorageUnavailableError(rollups.OUTDATED_LAYOUT)
    return bool(status == _ACCEPTED)


@cache
def _accept_script(redis: Redis) -> Script:
    return redis.register_script((Path(__file__).parent / "accept.lua").read_text("utf-8"))


def ensure_group(redis: Redis) -> None:
    """Create the stream and its consumer group (from the stream's start) unless they exist."""
    try:
        redis.xgroup_create(keys.ingest_stream(), keys.INGEST_GROUP, id="0", mkstream=True)
    except ResponseError as exc:
        if "BUSYGROUP" not in str(exc):
            raise


def read(redis: Redis, consumer: str, count: int, block_ms: int | None) -> list[Entry]:
    """New entries for this consumer (they stay pending on it until folded)."""
    reply: Any = redis.xreadgroup(
        keys.INGEST_GROUP, consumer, {keys.ingest_stream(): ">"}, count=count, block=block_ms
    )
    return [entry for _, found in reply or () for entry in _entries(found)]


def claim(redis: Redis, consumer: str, count: int, idle_ms: int = CLAIM_IDLE_MS) -> list[Entry]:
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


def backlog(redis: Redis) -> int:
    """Entries accepted and not yet folded (read or not)."""
    return int(redis.xlen(keys.ingest_stream()))


def set_aside(redis: Redis, entries: Sequence[Entry], why: str) -> None:
    """Move entries the fold cannot read to the dead letters, so they block nothing."""
    pipe = redis.pipeline(transaction=True)
    for entry in entries:
        fields = {"s": entry.source, "t": entry.accepted_at, "b": entry.body, "why": why}
        pipe.xadd(keys.ingest_dead_letters(), fields, maxlen=DEAD_LETTERS_KEPT)  # type: ignore[arg-type]
        pipe.xack(keys.ingest_stream(), keys.INGEST_GROUP, entry.id)
        pipe.xdel(keys.ingest_stream(), entry.id)
    pipe.execute()


def _entries(found: Any) -> list[Entry]:  # noqa: ANN401 - redis-py's reply
    """Entries from a stream reply; a deleted one (no fields) is skipped."""
    entries = []
    for raw_id, fields in found:
        if not fields:
            continue
        text = {keys.text(name): keys.text(value) for name, value in fields.items()}
        entries.append(Entry(keys.text(raw_id), text["s"], float(text["t"]), text["b"]))
    return entries
