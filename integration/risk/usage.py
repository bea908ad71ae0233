"""Usage and logins: active users and logins against the account's own normal, inactivity,
stickiness. Pure functions of an account's state; `now` is passed in."""

from __future__ import annotations

import math
from collections.abc import Sequence
from datetime import datetime
from functools import lru_cache

from integration.config.schema import InactivityRule, StickinessRule, UsageDropRule
from integration.risk.baselines import (
    WEEK,
    Comparison,
    compare,
    days_below,
    seasonally_adjusted,
    year_over_year,
)
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState, UsageHistory

# A drop this many times the configured threshold (capped at 100%) makes the flag high, not medium.
HIGH_DROP_FACTOR = 1.5
MIN_SEASONAL_RATIO = 0.1
STICKINESS_DAYS = 28


def usage_drop(state: AccountState, rule: UsageDropRule, now: datetime) -> list[Reason]:
    """Active users over the recent window against the account's own normal before it.

    Guards: an account whose normal is below `min_baseline_daily_users` cannot drop, an account
    without a full normal of history is not judged, and a small account (normal at most
    `small_account_max_users` a day) must stay down for `small_account_window_days`, so one or
    two people on vacation in a three-seat account is not a churn risk while a sustained drop is.
    A seasonal product's dip is measured against the same weeks last year.
    """
    return _drop(
        state.usage, state.usage.daily_active_users, rule, "usage_drop", "Daily active users"
    )


def login_frequency_drop(state: AccountState, rule: UsageDropRule, now: datetime) -> list[Reason]:
    """Logins against the account's own normal: people still come, but less often. Whether the
    account is small (and needs the longer window) is judged by its people, not its logins."""
    logins = state.usage.daily_metrics.get("logins", ())
    return _drop(
        state.usage,
        logins,
        rule,
        "login_frequency_drop",
        "Daily logins",
        sizing=state.usage.daily_active_users,
    )


def _drop(
    usage: UsageHistory,
    values: Sequence[int],
    rule: UsageDropRule,
    code: str,
    label: str,
    sizing: Sequence[int] | None = None,
) -> list[Reason]:
    comparison = metric_comparison(usage, values, rule, sizing)
    if comparison is None:
        return []
    recent, normal = comparison.per_day
    if normal <= 0 or normal < rule.min_baseline_daily_users:
        return []
    drop_pct = -comparison.change_pct
    noise = math.sqrt(comparison.expected)
    if drop_pct < rule.drop_pct or comparison.expected - comparison.actual < (
        rule.min_significance_z * noise
    ):
        return []
    days = days_below(values, usage.last_day, comparison.profile, rule.drop_pct)
    against = (
        "the same weeks last year"
        if comparison.seasonal
        else f"their {rule.baseline_days // WEEK}-week normal"
    )
    text = (
        f"{label} fell {drop_pct:.0f}% below {against} "
        f"({recent:.1f} vs {normal:.1f} a day) over the last {comparison.window_days} days"
        + (f", and every day for {days} days." if days > comparison.window_days else ".")
    )
    details = {
        "metric": code,
        "observed": round(recent, 2),
        "baseline": round(normal, 2),
        "drop_pct": round(drop_pct, 1),
        "window_days": comparison.window_days,
        "days_below": days,
        "seasonal": comparison.seasonal,
    }
    high = drop_pct >= min(100.0, rule.drop_pct * HIGH_DROP_FACTOR)
    severity = RiskLevel.HIGH if high else RiskLevel.MEDIUM
    return [Reason(code, code, text, severity, details)]


def usage_comparison(usage: UsageHistory, rule: UsageDropRule) -> Comparison | None:
    """Daily active users against their normal (see metric_comparison)."""
    return metric_comparison(usage, usage.daily_active_users, rule)


def metric_comparison(
    usage: UsageHistory,
    values: Sequence[int],
    rule: UsageDropRule,
    sizing: Sequence[int] | None = None,
) -> Comparison | None:
    """The window against the normal (small accounts: the longer window), seasonally adjusted
    when last year's same weeks dipped too; None without a full normal of history."""
    history = (usage.last_day - usage.first_day).days + 1 if usage.first_day else 0
    if len(values) < rule.window_days:
        return None
    block = rule.baseline_days // WEEK
    comparison = None
    for window in (rule.window_days, rule.small_account_window_days):
        comparison = _compare(
            tuple(values), usage.last_day, window, block, rule.lookback_weeks, history
        )
        size = (
            comparison
            if sizing is None  # the series sizes itself: the same comparison, not computed twice
            else _compare(
                tuple(sizing), usage.last_day, window, block, rule.lookback_weeks, history
            )
        )
        if comparison is None or size is None:
            return None
        if size.per_day[1] > rule.small_account_max_users:
            break
    if comparison is None or rule.seasonal == "no":
        return comparison
    last_year = _year_over_year(
        tuple(values), usage.last_day, comparison.window_days, block, rule.lookback_weeks, history
    )
    dipped = last_year is not None and last_year.change_pct <= -rule.drop_pct / 2
    # A near-zero week last year was an outage or a shutdown, not a season: ignore it.
    usable = (
        last_year is not None
        and last_year.expected > 0
        and (last_year.actual / last_year.expected >= MIN_SEASONAL_RATIO)
    )
    if last_year is not None and usable and (rule.seasonal == "yes" or dipped):
        return seasonally_adjusted(comparison, last_year)
    return comparison


# One assessment asks for the same comparisons several times (the usage drop, the logins' size
# guard, the trend field): remembering the last few saves about a third of the rule time.
_compare = lru_cache(maxsize=32)(compare)


_year_over_year = lru_cache(maxsize=32)(year_over_year)


def inactivity(state: AccountState, rule: InactivityRule, now: datetime) -> list[Reason]:
    """No one at the account has used the product for `days` days (and someone did before)."""
    last = state.usage.last_active
    if last is None:
        return []
    idle = (now - last).days
    if idle < rule.days:
        return []
    text = (
        f"No one at the account has used the product for {idle} days "
        f"(last activity {last.date().isoformat()})."
    )
    details = {"metric": "days_since_last_activity", "observed": idle, "threshold": rule.days}
    severity = RiskLevel.HIGH if idle >= 2 * rule.days else RiskLevel.MEDIUM
    return [Reason("inactivity", "inactivity", text, severity, details)]


def low_stickiness(state: AccountState, rule: StickinessRule, now: datetime) -> list[Reason]:
    """Average daily users against users active in 30 days (DAU/MAU): people come rarely."""
    monthly = state.usage.active_users_30d
    daily = state.usage.daily_active_users
    if monthly < rule.min_monthly_users or len(daily) < STICKINESS_DAYS:
        return []
    ratio = sum(daily[-STICKINESS_DAYS:]) / STICKINESS_DAYS / monthly
    if ratio >= rule.below_ratio:
        return []
    text = (
        f"On an average day only {ratio:.0%} of the {monthly} people active this month use "
        f"the product (below {rule.below_ratio:.0%})."
    )
    details = {"metric": "dau_mau", "observed": round(ratio, 3), "threshold": rule.below_ratio}
    return [Reason("low_stickiness", "low_stickiness", text, RiskLevel.LOW, details)]
