"""Per-account daily usage rollups in Redis: written at ingest, read by evaluation.

Each metric is one Redis string of fixed size holding two rings (integration/ring.lua writes them):
the last RECENT_DAYS days as exact u16 counters, then OLD_DAYS older days as one-byte codes, each
within 3% of the day's count. Every rule window and normal fits in the exact part; only the
seasonal look at last year reads the old part. A metric costs 630 bytes for 448 days and never
grows, so four metrics and the meta hash stay under the 4 KB an account may use (bench/README.md).

Old days are compacted per day rather than into weekly sums, which DESIGN.md suggested: a day
keeps its weekday for the year-over-year comparison, and an imported day can still be set again,
so importing the same file twice changes nothing.
"""

from __future__ import annotations

import sys
from array import array
from collections.abc import Sequence
from datetime import UTC, date, datetime, timedelta
from functools import cache
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

from redis import Redis
from redis.commands.core import Script

from integration.config.schema import HISTORY_DAYS_KEPT, Metrics
from integration.errors import StorageUnavailableError
from integration.signals.accounts import UsageHistory
from integration.signals.events import UsageEvent
from integration.store import keys

if TYPE_CHECKING:
    from integration.store.folding import FoldResult

RING_DAYS = HISTORY_DAYS_KEPT
# 26 weeks: the longest window (60 days) plus the longest lookback (16 weeks) is 172 days.
RECENT_DAYS = 182
OLD_DAYS = RING_DAYS - RECENT_DAYS
# The one-byte code of an old day (ring.lua's encode): 0-31 as is, above that four significant
# bits and an exponent, so a code reads back within 3% of the count it stood for.
DECODE = tuple(
    code if code < 32 else min(65535, (16 + code % 16) << (code // 16 - 1)) for code in range(256)
)

# DECODE split into big-endian byte planes, so bytes.translate decodes a whole ring at C speed.
_DECODED_HIGH = bytes(value >> 8 for value in DECODE)
_DECODED_LOW = bytes(value & 0xFF for value in DECODE)


def encode(value: int) -> int:
    """ring.lua's encode, for code that lays rings out itself (bench/evaluation.py, tests)."""
    if value < 32:
        return value
    shift = (value // 16).bit_length() - 1  # 16 <= value >> shift < 32
    mantissa = int(value / 2**shift + 0.5)
    if mantissa == 32:
        mantissa, shift = 16, shift + 1
    return (shift + 1) * 16 + mantissa - 16


def ring_bytes(values: Sequence[int], last_day: int) -> bytes:
    """A metric's stored string for `values` on consecutive days ending on day number `last_day`,
    exactly as ring.lua would have written it day by day."""
    recent = array("H", [0] * RECENT_DAYS)
    old = bytearray(OLD_DAYS)
    first_day = last_day - len(values) + 1
    for day, value in enumerate(values, start=first_day):
        if day > last_day - RECENT_DAYS:
            recent[day % RECENT_DAYS] = min(value, 65535)
        elif day > last_day - RING_DAYS:
            old[day % OLD_DAYS] = encode(min(value, 65535))
    if sys.byteorder == "little":
        recent.byteswap()
    return recent.tobytes() + bytes(old)


DELIVERY_DEDUPE_SECONDS = 7 * 24 * 3600
# Segment drops most duplicate messageIds within ~24 h and retries a delivery for up to 4 h
# (reference/segment.md 5): keep our own per-message marks a little longer than both. Each mark
# costs about 110 bytes of Redis, so the window stays near the 24 h the reference asks for.
MESSAGE_DEDUPE_SECONDS = 26 * 3600
# A usage event's own id (`event_id`) is marked per account (senders often number events per
# account, so one global id space would drop another account's real events) and kept as long as a
# Segment messageId: a sender re-sending an event under a new webhook-id does so within its retry
# window of hours. Every event with an id costs a mark of about 110 bytes; at tens of millions of
# events a day, three days of marks would cost gigabytes of Redis, 26 hours about one day's worth.
EVENT_DEDUPE_SECONDS = MESSAGE_DEDUPE_SECONDS
# Late events up to this age still count users distinctly per day.
DAY_USERS_TTL_SECONDS = 3 * 24 * 3600
UTILIZATION_WINDOW = timedelta(days=30)
LAST_SEEN_KEEP = timedelta(days=31)  # per-user last activity: 30-day actives read it
# Daily 30-day-active snapshots kept: a month ago, give or take a week of quiet days.
SNAPSHOT_DAYS = 40
SNAPSHOT_LOOKBACK_DAYS = 7
# Open tickets, and closed ones (so a late or repeated opening cannot reopen them), an account
# keeps: the newest this many of each.
TICKETS_KEPT = 500
OPEN_TICKETS_READ = 100  # the oldest this many are what long-open tickets are about
_EPOCH = date(1970, 1, 1)
# The series the seasonal rules read a year of; the others are read only as far as rules look.
LONG_HISTORY = frozenset({"active_users", "logins"})
_Ring = TypeVar("_Ring", bytes, "array[int]")
_SCRIPTS = Path(__file__).parent


# The layout ring.lua writes; integration/store/layout.py converts the one before it.
LAYOUT = "2"
OUTDATED_LAYOUT = (
    "the usage rollups in Redis are in an older layout: stop the previous release's "
    "processes, run `integration migrate` once, then start this release's"
)


def check_layout(stored: bytes | str | None) -> None:
    """Refuse rollups not marked with this layout (integration/store/layout.py marks a new Redis;
    older rollups' bytes would read as a collapse of usage). Checked in the same round trip as
    every fold and read; raised as a storage error, so webhooks answer 503 and senders retry
    once an admin has run `integration migrate`."""
    if stored is None or keys.text(stored) != LAYOUT:
        raise StorageUnavailableError(OUTDATED_LAYOUT)


def day_number(day: date) -> int:
    return (day - _EPOCH).days


def fold_usage(
    redis: Redis,
    delivery_key: str,
    events: Sequence[UsageEvent],
    evaluation_job_key: str,
    metrics: Metrics,
    now: datetime | None = None,
    source: str = "usage",
) -> FoldResult:
    """Fold one delivery directly (integration/store/folding.py fold_usage), for the tools,
    tests and benches that fold usage without the ingest stream. `evaluation_job_key` is no
    longer looked at: the fold consumer asks the queue Redis (integration/jobs/fold.py)."""
    from integration.store import folding  # it builds on this module

    return folding.fold_usage(
        redis, delivery_key, events, metrics, now or datetime.now(UTC), source
    )


@cache
def registered(redis: Redis, name: str) -> Script:
    """The script called by its SHA (EVALSHA): the hot ingest path does not resend its text."""
    return redis.register_script(script(name))


@cache
def script(name: str) -> str:
    """A Lua script with the shared ring helpers (ring.lua) in front of it."""
    prelude = (_SCRIPTS / "ring.lua").read_text(encoding="utf-8")
    return prelude + "\n" + (_SCRIPTS / name).read_text(encoding="utf-8")


def load_history(
    redis: Redis,
    account_id: str,
    now: datetime,
    last_day: date,
    days: int,
    metric_names: Sequence[str] = ("active_users", "events"),
) -> UsageHistory:
    """One account's history (see load_histories)."""
    return load_histories(redis, [account_id], now, last_day, days, metric_names)[account_id]


def load_histories(
    redis: Redis,
    account_ids: Sequence[str],
    now: datetime,
    last_day: date,
    days: int,
    metric_names: Sequence[str] = ("active_users", "events"),
    other_days: int | None = None,
) -> dict[str, UsageHistory]:
    """`days` of active users and logins ending on `last_day` (`other_days` of the other
    metrics, when given), plus account facts, for many accounts in one round trip (a daily
    evaluation reads 200 accounts a batch)."""
    since = (now - UTILIZATION_WINDOW).timestamp()
    names = list(dict.fromkeys(["active_users", "events", *metric_names]))
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        # One MGET per account, not one per batch: an account's keys share a hash tag, so this
        # also works on a Redis Cluster. Fewer commands is what makes the daily read fast.
        rings = [keys.daily_metric(account_id, name) for name in names]
        pipe.mget([*rings, keys.active_30d_snapshots(account_id)])
        pipe.hgetall(keys.account_meta(account_id))
        # Up to +inf, not `now`: the set keeps each user's latest time only, and `now` is the
        # judged moment, a day or more behind when a source lags, so a user also active since
        # then would drop out of the 30 days and read as an unused seat.
        pipe.zcount(keys.user_last_seen(account_id), since, "+inf")
        pipe.zrange(keys.open_tickets(account_id), 0, OPEN_TICKETS_READ - 1, withscores=True)
    pipe.get(keys.ticket_closings_seen())
    pipe.get(keys.rollups_layout())
    *replies, closings_since, layout = pipe.execute()
    check_layout(layout)
    per_account = 4
    end = day_number(last_day) + 1
    wanted = {
        name: range(end - (days if name in LONG_HISTORY or other_days is None else other_days), end)
        for name in names
    }
    return {
        account_id: _history(
            account_id,
            now,
            last_day,
            wanted,
            names,
            replies[n * per_account : (n + 1) * per_account],
            datetime.fromtimestamp(float(closings_since), UTC) if closings_since else None,
        )
        for n, account_id in enumerate(account_ids)
    }


def _history(
    account_id: str,
    now: datetime,
    last_day: date,
    wanted: dict[str, range],
    names: Sequence[str],
    replies: Sequence[Any],
    closings_since: datetime | None,
) -> UsageHistory:
    (*blobs, snapshots), meta_raw, active_30d, open_tickets = replies
    meta = {keys.text(k): keys.text(v) for k, v in meta_raw.items()}
    first = int(meta["first_day"]) if "first_day" in meta else None
    series = {}
    for name, blob in zip(names, blobs, strict=True):
        stored_last = meta.get(f"last_day:{name}", meta.get("last_day"))
        last = int(stored_last) if stored_last else None
        series[name] = _read_days(blob, wanted[name], first, last)
    daily = series["active_users"]
    last_active = (
        datetime.fromtimestamp(float(meta["last_active"]), UTC) if "last_active" in meta else None
    )
    if last_active is None or last_active > now:
        # Imported accounts have no per-user data, and a replay must not see later activity:
        # the last day anyone was counted stands in.
        active_days = [n for n, users in zip(wanted["active_users"], daily, strict=True) if users]
        last_active = (
            datetime.combine(_EPOCH + timedelta(days=active_days[-1]), datetime.max.time(), UTC)
            if active_days
            else None
        )
    return UsageHistory(
        account_id=account_id,
        last_day=last_day,
        daily_active_users=daily,
        daily_events=series["events"],
        first_day=_EPOCH + timedelta(days=first) if first is not None else None,
        seats=int(meta["seats"]) if "seats" in meta else None,
        # Users active in 30 days are at least the busiest day's users (imports have no ids).
        active_users_30d=max(int(active_30d), max(daily[-30:], default=0)),
        last_active=last_active,
        daily_metrics={n: v for n, v in series.items() if n != "active_users"},
        open_tickets=tuple(
            datetime.fromtimestamp(ts, UTC) for _, ts in open_tickets if ts <= now.timestamp()
        ),
        ticket_closings_since=closings_since,
        active_users_30d_before=_active_30d_before(snapshots, day_number(last_day)),
    )


def _active_30d_before(snapshots: bytes | None, last: int) -> int | None:
    """Users active in the 30 days up to 30 days before `last`: the day's snapshot, or the
    nearest earlier one within a week (a quiet day writes none); None when none was kept (an
    import or a backfill has no per-user record of those days)."""
    if snapshots:
        for day in range(last - 30, last - 30 - SNAPSHOT_LOOKBACK_DAYS - 1, -1):
            at = day % SNAPSHOT_DAYS * 4
            stamp = int.from_bytes(snapshots[at : at + 4], "big")
            if stamp >> 16 == day % 65536:
                return stamp & 0xFFFF
    return None


def _read_days(
    raw: bytes | None, wanted: range, first: int | None, stored_last: int | None
) -> tuple[int, ...]:
    """Counters for the wanted (consecutive) day numbers; days the rings do not hold read as 0.

    Everything here runs in C (slices, translate, array): this is the hot loop of the daily
    evaluation of every account, and a Python loop over 448 days would double its time."""
    if raw is None or first is None or stored_last is None or not wanted:
        return (0,) * len(wanted)
    start = max(wanted.start, first, stored_last - RING_DAYS + 1)
    stop = min(wanted.stop - 1, stored_last)
    if start > stop:
        return (0,) * len(wanted)
    raw = raw.ljust(2 * RECENT_DAYS + OLD_DAYS, b"\0")
    held = array("H")  # filled big-endian, as BITFIELD stores u16
    oldest_recent = stored_last - RECENT_DAYS + 1
    if start < oldest_recent:
        codes = _ring_slice(raw[2 * RECENT_DAYS :], OLD_DAYS, start, min(stop, oldest_recent - 1))
        wide = bytearray(2 * len(codes))
        wide[0::2], wide[1::2] = codes.translate(_DECODED_HIGH), codes.translate(_DECODED_LOW)
        held.frombytes(wide)
    if stop >= oldest_recent:
        counters = array("H", raw[: 2 * RECENT_DAYS])
        held += _ring_slice(counters, RECENT_DAYS, max(start, oldest_recent), stop)
    if sys.byteorder == "little":
        held.byteswap()
    return (0,) * (start - wanted.start) + tuple(held) + (0,) * (wanted.stop - 1 - stop)


def _ring_slice(ring: _Ring, size: int, first_day: int, last_day: int) -> _Ring:
    """The slots of consecutive days first_day..last_day (at most `size` of them) of a ring."""
    low, high = first_day % size, last_day % size
    return ring[low : high + 1] if low <= high else ring[low:] + ring[: high + 1]
