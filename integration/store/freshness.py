"""Freshness watermarks: which days of usage have arrived, so evaluation judges settled days only.

Each source (the usage webhook, Segment, the import) has a watermark: the last complete day it
delivered for any account. For live events that is the newest event day seen less one (the
newest day is still filling up); for the import, the newest row's day, at most yesterday (an
export holds whole days). The fold (fold_usage.lua) and the import (import_days.lua) raise it in
the round trip that stores the usage, and note on each account the newest day each source
delivered for it (`fed:<source>` in its meta hash).

An account is judged up to the oldest watermark among the sources that feed it: a source feeds
an account when it delivered for it within FEEDS_DAYS of the newest day any source did. So an
outage of Segment holds back only the accounts Segment feeds, and a source that stopped sending
an account anything (an import of its history before live events took over, a move from
Segment to our webhook) stops holding it back after a week. Nor does the import once its own
watermark is more than FEEDS_DAYS behind the newest one: a one-off `integration import` of
history goes quiet for every account, and would otherwise hold the accounts it alone fed at its
last day forever, never inactive. A live source (the webhook, Segment) is not dropped that way:
while it is down, however long, the accounts it alone feeds are judged as of its last day, as
their later days have not arrived (rather than read as inactive, down 100%). An account no
source has noted (rollups written before this release, or only people signals) is judged up to
the newest watermark; with no watermark at all (nothing delivered since this release), up to
yesterday, as before.

An account still receiving history (a delivery bringing it a day older than yesterday, within
`evaluation.backfill_quiet_seconds`) is judged only through the newest day the latest such
delivery brought it (the fold notes `history_at` and `history_day` in its meta hash): a backfill
sent in chunks minutes apart, while live traffic holds the watermark at yesterday, is not judged
on the days still to come, even when live usage for the same account brought it yesterday
already. Live usage alone (today's and yesterday's events) never holds an account back this
way. Once quiet, it is judged as of the watermark, so an account that truly stopped is still
seen.
Never later than the day before `now`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from datetime import date, datetime, timedelta

from redis import Redis

from integration.store import keys
from integration.store.rollups import day_number

USAGE, SEGMENT, IMPORT = "usage", "segment", "import"
SOURCES = (USAGE, SEGMENT, IMPORT)
# A longer outage of one of two sources that feed an account is judged on the other alone; a
# shorter window would do so sooner, a longer one hold back accounts a source has left longer.
FEEDS_DAYS = 7
_EPOCH = date(1970, 1, 1)


def fed_field(source: str) -> str:
    """The account meta field holding the newest day `source` delivered for the account."""
    return f"fed:{source}"


def as_date(day_number: int) -> date:
    return _EPOCH + timedelta(days=day_number)


def judged_day(
    fed: Mapping[str, int],
    watermarks: Mapping[str, int],
    last_day: date,
    history_day: int | None = None,
) -> date:
    """The last day an account is judged on (see the module docstring); day numbers in.
    `history_day`: the newest day the latest delivery bringing the account history (a day
    older than yesterday) brought it, when that came within `evaluation.backfill_quiet_seconds`;
    None when none did."""
    newest = max(watermarks.values(), default=0)
    feeding = [
        source
        for source, day in fed.items()
        if source in watermarks
        and day >= max(fed.values()) - FEEDS_DAYS
        # A one-off import quiet everywhere feeds none; a live source's outage holds its
        # accounts back however long it lasts (their days have not arrived).
        and (source != IMPORT or watermarks[source] >= newest - FEEDS_DAYS)
    ]
    judged: int | None = None
    if feeding:
        judged = min(watermarks[source] for source in feeding)
    elif watermarks:
        judged = max(watermarks.values())
    if history_day is not None:
        judged = history_day if judged is None else min(judged, history_day)
    return last_day if judged is None else min(as_date(judged), last_day)


def read_watermarks(redis: Redis) -> dict[str, date]:
    """Each source's watermark, for `integration evaluate` to show."""
    stored = redis.hgetall(keys.watermarks())
    return {keys.text(k): as_date(int(v)) for k, v in sorted(stored.items())}


def judged_days(
    redis: Redis,
    account_ids: Sequence[str],
    last_day: date,
    now: datetime | None = None,
    quiet_seconds: int = 0,
) -> dict[str, date]:
    """Each account's last judged day, at most `last_day`, in one round trip; an account that
    received history less than `quiet_seconds` before `now` is judged through the newest day that
    delivery brought it at most (a backfill in progress is not judged on the days still to come)."""
    pipe = redis.pipeline(transaction=False)
    pipe.hgetall(keys.watermarks())
    fields = [*(fed_field(source) for source in SOURCES), "history_at", "history_day"]
    for account_id in account_ids:
        pipe.hmget(keys.account_meta(account_id), fields)
    stored, *fed_replies = pipe.execute()
    watermarks = {keys.text(k): int(v) for k, v in stored.items()}
    quiet_since = now.timestamp() - quiet_seconds if now is not None else math.inf
    return {
        account_id: judged_day(
            {source: int(day) for source, day in zip(SOURCES, fed, strict=True) if day},
            watermarks,
            last_day,
            int(day) if at is not None and day is not None and float(at) > quiet_since else None,
        )
        for account_id, (*fed, at, day) in zip(account_ids, fed_replies, strict=True)
    }


def receiving_history_until(
    redis: Redis, account_ids: Sequence[str], now: datetime, quiet_seconds: int
) -> dict[str, float]:
    """Accounts that received history less than `quiet_seconds` before `now`, with the moment
    that backfill turns quiet: until then they are judged on part of it, so they are judged
    again then, on all of it."""
    pipe = redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.hget(keys.account_meta(account_id), "history_at")
    replies = pipe.execute()
    return {
        account_id: float(at) + quiet_seconds
        for account_id, at in zip(account_ids, replies, strict=True)
        if at is not None and float(at) + quiet_seconds > now.timestamp()
    }


_RAISE = """
local day = tonumber(ARGV[2])
if day > (tonumber(redis.call('HGET', KEYS[1], ARGV[1])) or -1) then
  redis.call('HSET', KEYS[1], ARGV[1], day)
end
"""


def raise_watermark(redis: Redis, source: str, day: date) -> None:
    """Move a source's watermark up to `day` (never down), as the source's first event of the
    day after would: tests stand in for a live sender this way."""
    redis.eval(_RAISE, 1, keys.watermarks(), source, day_number(day))
