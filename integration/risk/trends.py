"""The last weeks of the metric behind a reason, for the rep to see at a glance: a weekly series
from the history the rules already read, and a one-line sparkline of it in block characters
(plain text, so it reads the same in a HubSpot task body and a Salesforce Description).

Pure: a UsageHistory in, values out; nothing is read that the rules did not load (the other
metrics are loaded for at least 9 weeks, assess.other_days_needed).
"""

from __future__ import annotations

import math
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

from integration.risk.catalogue import REASONS
from integration.risk.reasons import Reason
from integration.signals.accounts import UsageHistory

TREND_WEEKS = 8
WEEK_DAYS = 7
BLOCKS = "▁▂▃▄▅▆▇█"
# Daily active users are people: a week of them is the average day. Everything else is a count:
# a week of it is the week's total.
AVERAGED = frozenset({"active_users"})
_LABELS = {
    "active_users": "Daily active users (weekly average)",
    "logins": "Logins a week",
    "tickets_opened": "Support tickets opened a week",
    "nps_detractors": "NPS detractors a week",
    "csat_responses": "CSAT responses a week",
}


@dataclass(frozen=True, slots=True)
class Trend:
    """A metric week by week, oldest first, the last week ending on the judged day."""

    label: str
    values: tuple[float, ...]

    @property
    def sparkline(self) -> str:
        return sparkline(self.values)


def sparkline(values: Sequence[float]) -> str:
    """One block character per value, scaled from the lowest (▁) to the highest (█); all equal
    is a flat line at the middle (▄); empty is ""."""
    if not values:
        return ""
    low, high = min(values), max(values)
    if not high > low or not math.isfinite(high - low):
        # Level: at the bottom when it is nothing at all, else a line in the middle.
        return (BLOCKS[0] if high == 0 else BLOCKS[len(BLOCKS) // 2 - 1]) * len(values)
    top = len(BLOCKS) - 1
    return "".join(BLOCKS[round((value - low) / (high - low) * top)] for value in values)


def weekly_series(
    usage: UsageHistory, metrics: str | Iterable[str], weeks: int = TREND_WEEKS
) -> tuple[float, ...]:
    """`weeks` whole weeks ending on `usage.last_day`, oldest first: for active users the
    average day, for counts the week's total (several metrics: their totals added). Weeks the
    history does not hold whole, or that began before the account's first day, are left out,
    so a young account's line is shorter rather than padded with weeks it did not exist."""
    names = (metrics,) if isinstance(metrics, str) else tuple(metrics)
    series = [_daily(usage, name) for name in names]
    held = min(map(len, series), default=0)
    if usage.first_day is not None:
        held = min(held, (usage.last_day - usage.first_day).days + 1)
    days = min(weeks, held // WEEK_DAYS) * WEEK_DAYS
    if days <= 0:
        return ()
    recent = (
        series[0][-days:] if len(series) == 1 else list(map(_add, *(s[-days:] for s in series)))
    )
    totals = [sum(recent[n : n + WEEK_DAYS]) for n in range(0, days, WEEK_DAYS)]
    if len(names) == 1 and names[0] in AVERAGED:
        return tuple(round(total / WEEK_DAYS, 1) for total in totals)
    return tuple(map(float, totals))


def reason_trend(reason: Reason, usage: UsageHistory) -> Trend | None:
    """The trend behind one reason, or None when it has no metric (people, renewal, onboarding)
    or an unknown code."""
    drawn = trend_metrics(reason)
    if drawn is None:
        return None
    label, names = drawn
    return Trend(label, weekly_series(usage, names))


def reason_trends(reasons: Iterable[Reason], usage: UsageHistory) -> dict[str, Trend]:
    """Each reason's trend by its key, for the reasons with a metric behind them (reasons on
    the same metric share one series: several reasons often read active users)."""
    trends = {}
    drawn: dict[tuple[str, ...], tuple[float, ...]] = {}
    for reason in reasons:
        found = trend_metrics(reason)
        if found is None:
            continue
        label, names = found
        values = drawn.get(names)
        if values is None:
            values = drawn[names] = weekly_series(usage, names)
        if values:
            trends[reason.key] = Trend(label, values)
    return trends


def trend_metrics(reason: Reason) -> tuple[str, tuple[str, ...]] | None:
    """The label and the daily metrics a reason's trend draws: its code's metric, or for a key
    feature the feature(s) its details name; None when it has none."""
    info = REASONS.get(reason.code)
    if info is None:
        return None
    if info.metric is not None:
        return _LABELS.get(info.metric) or _count_label(info.metric), (info.metric,)
    if info.metric_detail is None:
        return None
    named = reason.details.get(info.metric_detail)
    features = (named,) if isinstance(named, str) else tuple(named or ())
    if not features or not all(isinstance(name, str) for name in features):
        return None
    label = "Use of " + ", ".join(name.replace("_", " ") for name in features) + " a week"
    return label, features


def trend_to_json(trend: Trend) -> dict[str, Any]:
    return {"label": trend.label, "values": list(trend.values)}


def trend_from_json(data: Mapping[str, Any]) -> Trend:
    return Trend(str(data["label"]), tuple(float(v) for v in data["values"]))


def _daily(usage: UsageHistory, name: str) -> Sequence[int]:
    if name == "active_users":
        return usage.daily_active_users
    if name == "events":
        return usage.daily_metrics.get("events", usage.daily_events)
    # A metric never counted for the account reads as zeros, as the rules read it.
    return usage.daily_metrics.get(name) or (0,) * len(usage.daily_active_users)


def _add(*values: int) -> int:
    return sum(values)


def _count_label(metric: str) -> str:
    return f"{metric.replace('_', ' ').capitalize()} a week"
