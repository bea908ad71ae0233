"""Which layout the usage rollups in Redis are written in, and the move from the older one.

Layout 1 (until 2026-11) kept each metric as one ring of 448 u16 counters, slot = day % 448.
Layout 2 (integration/ring.lua) keeps 182 exact days and 266 older days as one-byte codes. The
two read the same bytes differently, so processes refuse to fold or read rollups until Redis
says layout 2 (checked in the same round trip as each fold and read); `integration migrate`
converts, once.
"""

from __future__ import annotations

import logging
import sys
from array import array
from dataclasses import dataclass

from redis import Redis
from redis.exceptions import RedisError, WatchError

from integration.store import keys, renames, rollups
from integration.store.rollups import LAYOUT

_OLD_RING_DAYS = 448
logger = logging.getLogger(__name__)


def prepare(redis: Redis) -> None:
    """At start-up: mark a Redis that holds no rollups yet (a new install) with the current
    layout. One that holds rollups but no mark was written by the release before; it stays
    unmarked, so nothing is folded or read until `integration migrate` converts it. A Redis
    that is down now is left for the next start or for `integration migrate`."""
    try:
        if redis.exists(keys.rollups_layout()):
            return
        rings = keys.daily_metric("*", "*")  # glob: any account's any metric
        if next(redis.scan_iter(match=rings, count=1000), None) is None:
            redis.set(keys.rollups_layout(), LAYOUT, nx=True)
    except RedisError:
        logger.warning("could not check the rollups' layout; `integration migrate` will")


@dataclass
class MigrationSummary:
    accounts: int = 0
    rings: int = 0
    already_current: bool = False
    keys_renamed: int = 0


def migrate(redis: Redis) -> MigrationSummary:
    """Convert every account's rings to the current layout. Run it with the previous release's
    processes stopped: they neither read nor respect the mark, and would write their layout
    into converted rings. Each account is converted in a WATCH transaction (a write meanwhile
    makes it start over) and marked, so two runs, or an interrupted one, convert it once."""
    summary = MigrationSummary(keys_renamed=_rename_untagged_keys(redis))
    stored = redis.get(keys.rollups_layout())
    if stored is not None and keys.text(stored) == LAYOUT:
        summary.already_current = True
        return summary
    for raw in redis.sscan_iter(keys.known_accounts(), count=500):
        while True:
            try:
                rings = _convert_account(redis, keys.text(raw))
                break
            except WatchError:
                continue  # the account changed while it was read: read it again
        if rings is not None:
            summary.accounts += 1
            summary.rings += rings
    redis.set(keys.rollups_layout(), LAYOUT)
    return summary


def _rename_untagged_keys(redis: Redis) -> int:
    """First, whatever the layout: move the keys written before the hash tags to their tagged
    names (integration/store/renames.py); a second run finds nothing to move."""
    moved = renames.adopt_untagged_keys(redis)
    if moved:
        logger.info("keys moved to their hash-tagged names", extra={"keys": moved})
    return moved


def _convert_account(redis: Redis, account_id: str) -> int | None:
    """Convert one account's rings; None when it is in the current layout already."""
    meta_key = keys.account_meta(account_id)
    # One account's keys (one slot): a cluster allows WATCH only in a transaction pipeline.
    with redis.pipeline(transaction=True) as pipe:
        pipe.watch(meta_key)  # type: ignore[no-untyped-call]  # redis-py leaves watch untyped
        meta = {keys.text(k): keys.text(v) for k, v in pipe.hgetall(meta_key).items()}
        if meta.get("ring_layout") == LAYOUT:
            return None
        first = meta.get("first_day")
        # Every ring has its last day in the meta hash (last_day:<metric>): that lists them.
        rings = {
            keys.daily_metric(account_id, field.removeprefix("last_day:")): int(last)
            for field, last in meta.items()
            if field.startswith("last_day:") and first is not None
        }
        if rings:
            pipe.watch(*rings)  # type: ignore[no-untyped-call]
        blobs = [pipe.get(ring_key) for ring_key in rings]
        pipe.multi()
        for (ring_key, last), blob in zip(rings.items(), blobs, strict=True):
            if isinstance(blob, bytes) and first is not None:
                old_days = _old_ring_days(blob, int(first), last)
                pipe.set(ring_key, rollups.ring_bytes(old_days, last))
        pipe.hset(meta_key, "ring_layout", LAYOUT)
        pipe.execute()
    return len(rings)


def _old_ring_days(raw: bytes, first: int, last: int) -> list[int]:
    """Layout 1's days first..last (at most 448), oldest first."""
    counters = array("H", raw.ljust(_OLD_RING_DAYS * 2, b"\0")[: _OLD_RING_DAYS * 2])
    if sys.byteorder == "little":
        counters.byteswap()
    start = max(first, last - _OLD_RING_DAYS + 1)
    return [counters[day % _OLD_RING_DAYS] for day in range(start, last + 1)]
