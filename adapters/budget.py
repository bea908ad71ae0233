"""One daily API budget per CRM: how much is left, who may spend the reserve, when it runs out.

The figures are the CRM's own (HubSpot's X-HubSpot-RateLimit-Daily headers, Salesforce's
Sforce-Limit-Info), kept in the shared ledger (adapters/ledger.py) by the transports. A share of
the quota (`budget.reserve_share`) is kept for urgent playbooks: once only that is left, bulk
work (field refreshes, non-urgent playbooks) waits for the reset. The priority of a call is
carried in a contextvar, so the CrmAdapter protocol does not change: playbooks/batches.py wraps
each action in `spending(...)`; field writes are bulk unless said otherwise; other calls (the
lookups that tell urgent work from the rest) may spend the reserve.

`budget_status` and `describe` are the read API for `integration plan` and `integration report`.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from contextvars import ContextVar
from dataclasses import dataclass
from datetime import UTC, datetime, time, timedelta, tzinfo
from enum import StrEnum
from zoneinfo import ZoneInfo, ZoneInfoNotFoundError

from redis import Redis

from adapters.ledger import DAY_SECONDS, MINUTE_SECONDS, Figures, Ledger
from integration.config.schema import Budget, Config

HOUR_SECONDS = 3600
# Salesforce counts a rolling 24 hours: a call leaves the window a day after it was made.
ROLLING = frozenset({"salesforce"})
OWNERS = {"hubspot": "the portal's", "salesforce": "the org's"}
LABELS = {"hubspot": "HubSpot", "salesforce": "Salesforce"}
# A rolling window's figures older than this do not hold bulk work back: the next call goes
# and brings fresh ones (else a quiet hour would keep stale figures, and the hold, for ever).
STALE_SECONDS = 900


class Priority(StrEnum):
    """Who is spending: urgent playbooks may spend the reserve, bulk work may not."""

    URGENT = "urgent"
    BULK = "bulk"


_priority: ContextVar[Priority | None] = ContextVar("api_budget_priority", default=None)


@contextmanager
def spending(priority: Priority) -> Iterator[None]:
    """CRM calls made inside are `priority` work (the transports read it)."""
    token = _priority.set(priority)
    try:
        yield
    finally:
        _priority.reset(token)


def current_priority() -> Priority | None:
    """The priority set by `spending`, None outside any."""
    return _priority.get()


@dataclass(frozen=True, slots=True)
class BudgetStatus:
    """One CRM's daily API budget at `now`, with the forecast at our last hour's call rate."""

    crm: str
    used: int
    limit: int
    remaining: int
    reserved: int
    resets_at: datetime
    rolling: bool
    source: str
    reported_at: datetime | None
    calls_last_hour: int
    runs_out_at: datetime | None
    reserve_reached_at: datetime | None
    # A rolling window's figures too old to hold anything back (the gate lets the next call
    # go to bring fresh ones): shown as last reported, never as a hold.
    stale: bool = False

    @property
    def bulk_held(self) -> bool:
        """Only the reserve is left: field refreshes and non-urgent playbooks wait."""
        return self.remaining <= self.reserved and not self.stale

    def available(self, urgent: bool) -> int:
        """Calls this kind of work may still spend before the reset."""
        return self.remaining if urgent else max(0, self.remaining - self.reserved)

    def to_json(self) -> dict[str, object]:
        stamps = {
            "resets_at": self.resets_at,
            "reported_at": self.reported_at,
            "runs_out_at": self.runs_out_at,
            "reserve_reached_at": self.reserve_reached_at,
        }
        return {
            "crm": self.crm,
            "used": self.used,
            "limit": self.limit,
            "remaining": self.remaining,
            "reserved": self.reserved,
            "rolling": self.rolling,
            "source": self.source,
            "calls_last_hour": self.calls_last_hour,
            "bulk_held": self.bulk_held,
            "stale": self.stale,
            **{name: at.isoformat() if at else None for name, at in stamps.items()},
        }


def zone(name: str) -> tzinfo:
    """The portal's time zone; UTC for a name this machine does not know."""
    try:
        return ZoneInfo(name)
    except (ZoneInfoNotFoundError, ValueError):
        return UTC


def next_midnight(now: datetime, where: tzinfo) -> datetime:
    """When HubSpot's daily counter resets: the next midnight in the portal's time zone."""
    local = now.astimezone(where)
    return datetime.combine(local.date() + timedelta(days=1), time(), where)


def bulk_share(crm: str, config: Config) -> float:
    """The share of the quota bulk work may use. Salesforce's older `api_budget_share` (field
    writes stop past it) still holds when it is the lower bar."""
    share = 1 - config.budget.reserve_share
    return min(share, config.crm.salesforce.api_budget_share) if crm == "salesforce" else share


def period(crm: str, budget: Budget, now: datetime) -> str:
    """The day the CRM's figures belong to ('' for a rolling window)."""
    if crm in ROLLING:
        return ""
    return now.astimezone(zone(budget.hubspot_time_zone)).date().isoformat()


def reserved_calls(limit: int, share: float) -> int:
    """Calls kept for urgent work when bulk work may use `share` of `limit`."""
    return limit - math.floor(round(limit * share, 6))


def current_figures(crm: str, figures: Figures | None, budget: Budget, now: datetime) -> Figures:
    """The figures for `now`: a new day starts from zero (the limit stays what it was), and a
    configured HubSpot limit stands in until the CRM says otherwise."""
    today = period(crm, budget, now)
    configured = budget.hubspot_daily_limit if crm == "hubspot" else None
    if figures is None:
        return Figures(0, configured, "counted" if configured else "", today, None)
    limit = figures.limit if figures.limit is not None else configured
    if figures.period != today:
        return Figures(0, limit, figures.source, today, None)
    return Figures(figures.used, limit, figures.source, figures.period, figures.reported_at)


def status_of(
    crm: str,
    figures: Figures | None,
    calls: Sequence[tuple[int, int]],
    budget: Budget,
    share: float,
    now: datetime,
) -> BudgetStatus | None:
    """The budget from the ledger's figures and our calls a minute (pure), bulk work using
    `share` of the quota at most; None when the limit is unknown."""
    current = current_figures(crm, figures, budget, now)
    if current.limit is None:
        return None
    limit, rolling = current.limit, crm in ROLLING
    remaining = max(0, limit - current.used)
    reserved = reserved_calls(limit, share)
    start = now.timestamp()
    last_hour = sum(n for at, n in calls if at >= start - HOUR_SECONDS)
    rate = last_hour / HOUR_SECONDS
    if rolling:
        resets_at = now + timedelta(seconds=DAY_SECONDS)
        leaving = _leaving(calls, start)
    else:
        resets_at = next_midnight(now, zone(budget.hubspot_time_zone))
        leaving = []
    horizon = resets_at.timestamp() - start
    out = _reached(current.used, limit, rate, leaving, horizon)
    reserve = _reached(current.used, limit - reserved, rate, leaving, horizon)
    return BudgetStatus(
        crm=crm,
        used=current.used,
        limit=limit,
        remaining=remaining,
        reserved=reserved,
        resets_at=resets_at,
        rolling=rolling,
        source=current.source,
        reported_at=datetime.fromtimestamp(current.reported_at, UTC)
        if current.reported_at
        else None,
        calls_last_hour=last_hour,
        runs_out_at=None if out is None or remaining <= 0 else now + timedelta(seconds=out),
        reserve_reached_at=None
        if reserve is None or remaining <= reserved
        else now + timedelta(seconds=reserve),
        stale=is_stale(crm, current.reported_at, now),
    )


def is_stale(crm: str, reported_at: float | None, now: datetime) -> bool:
    """Figures of a rolling window last reported more than STALE_SECONDS ago (the gate and
    the status shown to people share this rule)."""
    if crm not in ROLLING or reported_at is None:
        return False
    return now.timestamp() - reported_at > STALE_SECONDS


def budget_status(
    redis: Redis, crm_name: str, config: Config, now: datetime
) -> BudgetStatus | None:
    """The CRM's daily API budget as the ledger has it (Redis only, never the CRM); None for a
    CRM without a quota (the sandbox) or one whose limit is unknown."""
    if crm_name not in LABELS:
        return None
    ledger = Ledger(redis, crm_name)
    calls = ledger.calls(now.timestamp() - DAY_SECONDS)
    share = bulk_share(crm_name, config)
    return status_of(crm_name, ledger.figures(), calls, config.budget, share, now)


def seconds_until_free(
    status: BudgetStatus, calls: Sequence[tuple[int, int]], now: datetime, below: int
) -> float | None:
    """Seconds until the used count falls below `below` with no more calls made: the reset for
    a daily quota; for a rolling window, when enough of OUR recorded calls have left it.
    Assumed: the other apps' calls in the window leave it no sooner than ours (we do not see
    them), so the estimate errs late; None when our calls alone cannot free enough."""
    if not status.rolling:
        return max(1.0, (status.resets_at - now).total_seconds())
    left, surplus = 0, status.used - below + 1
    for after, count in _leaving(calls, now.timestamp()):
        left += count
        if left >= surplus:
            return max(float(MINUTE_SECONDS), after)
    return None


def describe(status: BudgetStatus) -> str:
    """One line for humans: used, left, the reserve, our rate and when it runs out."""
    label, zone_note = LABELS.get(status.crm, status.crm), _when(status.resets_at)
    window = "in the last 24 h (rolling)" if status.rolling else "today"
    line = (
        f"{label} API: {status.used:,} of {status.limit:,} calls used {window}, "
        f"{status.remaining:,} left ({status.reserved:,} kept for urgent playbooks); "
        f"{status.calls_last_hour:,} calls in the last hour"
    )
    if status.stale and status.reported_at is not None:
        return (
            f"{line}, as last reported at {_when(status.reported_at)}: too old to hold work "
            "back (the next call brings fresh figures)"
        )
    if status.remaining <= 0:
        return f"{line}; the quota is spent: every call waits until {zone_note}"
    if status.bulk_held:
        return f"{line}; only the reserve is left: bulk work waits (urgent playbooks go on)"
    if status.runs_out_at is not None:
        return f"{line}; at that rate it runs out at {_when(status.runs_out_at)}"
    ends = "before calls leave the window" if status.rolling else f"before the reset at {zone_note}"
    return f"{line}; at that rate it lasts {ends}"


def describe_time(now: datetime, seconds: float, where: tzinfo = UTC) -> str:
    """`now` plus `seconds`, for a message: '2026-12-02 00:00 EST'."""
    return _when((now + timedelta(seconds=seconds)).astimezone(where))


def _when(at: datetime) -> str:
    return at.strftime("%Y-%m-%d %H:%M %Z").strip()


def _leaving(calls: Sequence[tuple[int, int]], start: float) -> list[tuple[float, int]]:
    """Our calls a minute as (seconds from `start` until they have left a 24 h window, calls)."""
    return [(at + MINUTE_SECONDS + DAY_SECONDS - start, n) for at, n in sorted(calls)]


def _reached(
    used: int, target: int, rate: float, leaving: Sequence[tuple[float, int]], horizon: float
) -> float | None:
    """Seconds until `used` reaches `target` at `rate` calls a second, with `leaving` calls
    leaving the window on the way; None if not within `horizon`."""
    at, level = 0.0, float(used)
    for until, count in [*((t, n) for t, n in leaving if 0 < t < horizon), (horizon, 0)]:
        if level >= target:
            return at
        if rate > 0 and at + (target - level) / rate <= until:
            return at + (target - level) / rate
        level += rate * (until - at) - count
        at = until
    return None
