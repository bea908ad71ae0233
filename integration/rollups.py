"""Per-account daily usage rollups in Redis: written at ingest, read by evaluation.

Each metric is a Redis string of u16 counters, one per day in a ring of RING_DAYS slots, so an
account's history costs 2 bytes a metric-day and never grows (DESIGN.md: about 1 KB per metric).
"""

from __future__ import annotations

import json
from collections import defaultdict
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import Any

from redis import Redis

from integration import keys
from integration.accounts import UsageHistory
from integration.signals import UsageEvent

RING_DAYS = 512
DELIVERY_DEDUPE_SECONDS = 7 * 24 * 3600
# Late events up to this age still count users distinctly per day.
DAY_USERS_TTL_SECONDS = 3 * 24 * 3600
UTILIZATION_WINDOW = timedelta(days=30)
_EPOCH = date(1970, 1, 1)
_FOLD_SCRIPT_PATH = Path(__file__).with_name("fold_usage.lua")


@dataclass(frozen=True, slots=True)
class FoldResult:
    duplicate: bool
    dirty_was_empty: bool


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def fold_usage(redis: Redis, delivery_key: str, events: Sequence[UsageEvent]) -> FoldResult:
    """Write a whole delivery in one round trip; a delivery seen before writes nothing."""
    duplicate, dirty_was_empty = redis.eval(
        _fold_script(),
        2,
        delivery_key,
        keys.dirty_accounts(),
        DELIVERY_DEDUPE_SECONDS,
        RING_DAYS,
        DAY_USERS_TTL_SECONDS,
        json.dumps(_groups(events), separators=(",", ":")),
    )
    return FoldResult(bool(duplicate), bool(dirty_was_empty))


@cache
def _fold_script() -> str:
    return _FOLD_SCRIPT_PATH.read_text(encoding="utf-8")


def _groups(events: Sequence[UsageEvent]) -> list[dict[str, Any]]:
    """Group events per account and day in Python, so Redis does one update per group."""
    grouped: dict[tuple[str, int], dict[str, Any]] = {}
    seen: dict[tuple[str, int], dict[str, float]] = defaultdict(dict)
    for event in events:
        number = day_number(event.occurred_at.date())
        ts = event.occurred_at.timestamp()
        group = grouped.setdefault((event.account_id, number), _new_group(event.account_id, number))
        group["events"] += 1
        group["last_ts"] = max(group["last_ts"], ts)
        if event.seats is not None:
            group["seats"] = event.seats
        users = seen[(event.account_id, number)]
        users[event.user_id] = max(users.get(event.user_id, 0.0), ts)
    for key, group in grouped.items():
        group["users"] = list(seen[key])
        group["user_seen"] = list(seen[key].values())
    return list(grouped.values())


def _new_group(account_id: str, number: int) -> dict[str, Any]:
    return {
        "account": account_id,
        "day": number,
        "events": 0,
        "last_ts": 0.0,
        "seats": None,
        "active_key": keys.daily_metric(account_id, "active_users"),
        "events_key": keys.daily_metric(account_id, "events"),
        "meta_key": keys.account_meta(account_id),
        "users_key": keys.day_users(account_id, number),
        "last_seen_key": keys.user_last_seen(account_id),
    }


def take_dirty_accounts(redis: Redis, limit: int) -> list[str]:
    """Pop up to `limit` accounts that have new usage since they were last evaluated."""
    popped = redis.spop(keys.dirty_accounts(), limit)
    return sorted(keys.text(item) for item in popped or [])


def mark_dirty(redis: Redis, account_ids: Sequence[str]) -> None:
    if account_ids:
        redis.sadd(keys.dirty_accounts(), *account_ids)


def load_history(redis: Redis, account_id: str, last_day: date, days: int) -> UsageHistory:
    """Read `days` of daily counts ending on `last_day`, plus account facts, in one round trip."""
    since = datetime.combine(last_day, datetime.min.time(), UTC) - UTILIZATION_WINDOW
    pipe = redis.pipeline(transaction=False)
    pipe.get(keys.daily_metric(account_id, "active_users"))
    pipe.get(keys.daily_metric(account_id, "events"))
    pipe.hgetall(keys.account_meta(account_id))
    pipe.zcount(keys.user_last_seen(account_id), since.timestamp(), "+inf")
    active_raw, events_raw, meta_raw, active_30d = pipe.execute()
    meta = {k.decode(): v.decode() for k, v in meta_raw.items()}
    stored_last = int(meta["last_day"]) if "last_day" in meta else None
    first = int(meta["first_day"]) if "first_day" in meta else None
    wanted = range(day_number(last_day) - days + 1, day_number(last_day) + 1)
    return UsageHistory(
        account_id=account_id,
        last_day=last_day,
        daily_active_users=_read_days(active_raw, wanted, first, stored_last),
        daily_events=_read_days(events_raw, wanted, first, stored_last),
        first_day=_EPOCH + timedelta(days=first) if first is not None else None,
        seats=int(meta["seats"]) if "seats" in meta else None,
        active_users_30d=int(active_30d),
        last_active=(
            datetime.fromtimestamp(float(meta["last_active"]), UTC)
            if "last_active" in meta
            else None
        ),
    )


def _read_days(
    raw: bytes | None, wanted: range, first: int | None, stored_last: int | None
) -> tuple[int, ...]:
    """Counters for the wanted day numbers; days outside what the ring holds read as zero."""
    blob = raw or b""
    values = []
    for number in wanted:
        held = first is not None and stored_last is not None and first <= number <= stored_last
        held = held and number > (stored_last or 0) - RING_DAYS
        offset = (number % RING_DAYS) * 2
        values.append(int.from_bytes(blob[offset : offset + 2], "big") if held else 0)
    return tuple(values)
