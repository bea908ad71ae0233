"""Adoption and utilization: seats used, utilization growth, key features, onboarding.
Pure functions of an account's state; `now` is passed in."""

from __future__ import annotations

from datetime import datetime

from integration.config.schema import (
    AdoptionRule,
    KeyFeatureDeclineRule,
    OnboardingRule,
    UtilizationGrowthRule,
    UtilizationRule,
)
from integration.risk.baselines import recent_total
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.usage import Measure, metric_drop
from integration.signals.accounts import AccountState

STALLED_REMINDER_DAYS = 30  # keep saying it for a month after the deadline, then stop


def license_utilization(state: AccountState, rule: UtilizationRule, now: datetime) -> list[Reason]:
    """Few of the purchased seats are in use: the renewal conversation starts at a discount."""
    seats, active = state.seats, state.usage.active_users_30d
    if not seats or seats < rule.min_seats:
        return []
    share = active / seats * 100
    if share >= rule.below_pct:
        return []
    text = (
        f"Only {active} of {seats} licensed seats were used in the last 30 days "
        f"({share:.0f}%, below {rule.below_pct:.0f}%)."
    )
    details = {
        "metric": "license_utilization_pct",
        "observed": round(share, 1),
        "threshold": rule.below_pct,
        "seats": seats,
        "active_users_30d": active,
    }
    return [Reason("license_utilization", "license_utilization", text, RiskLevel.LOW, details)]


def utilization_growth(
    state: AccountState, rule: UtilizationGrowthRule, now: datetime
) -> list[Reason]:
    """More of the seats in use than 30 days before: an expansion conversation, not a risk."""
    usage = state.usage
    seats, daily = state.seats, usage.daily_active_users
    if not seats or seats < rule.min_seats:
        return []
    if usage.active_users_30d_before is not None:
        now_users, then_users = usage.active_users_30d, usage.active_users_30d_before
        measure = "users active in 30 days"
    elif len(daily) >= 60 and max(daily[-60:-30]) > 0:
        # No per-user record of a month ago (an import, a backfill): compare like with like,
        # the busiest day of each 30 days, rather than distinct users now against a floor then.
        now_users, then_users = max(daily[-30:]), max(daily[-60:-30])
        measure = "users on the busiest day"
    else:
        return []
    now_pct, then_pct = now_users / seats * 100, then_users / seats * 100
    if now_pct - then_pct < rule.points:
        return []
    text = (
        f"License utilization rose from {then_pct:.0f}% to {now_pct:.0f}% in 30 days "
        f"({now_users} of {seats} seats in use): room to expand."
    )
    details = {
        "metric": "license_utilization_pct",
        "measure": measure,
        "observed": round(now_pct, 1),
        "baseline": round(then_pct, 1),
        "threshold_points": rule.points,
        "window_days": 30,
    }
    return [Reason("utilization_growth", "utilization_growth", text, RiskLevel.NONE, details)]


def key_feature_not_adopted(state: AccountState, rule: AdoptionRule, now: datetime) -> list[Reason]:
    """A configured key feature went unused for `days` by an account at least that old."""
    usage = state.usage
    if usage.first_day is None or (usage.last_day - usage.first_day).days + 1 < rule.days:
        return []
    unused = [
        name
        for name in rule.key_features
        if not recent_total(usage.daily_metrics.get(name, ()), rule.days)
    ]
    if not unused:
        return []
    names = ", ".join(name.replace("_", " ") for name in unused)
    text = f"No one used {names} in the last {rule.days} days."
    details = {"metric": "key_features", "unused": unused, "window_days": rule.days}
    return [
        Reason("key_feature_not_adopted", "key_feature_not_adopted", text, RiskLevel.LOW, details)
    ]


def key_feature_decline(
    state: AccountState, rule: KeyFeatureDeclineRule, now: datetime
) -> list[Reason]:
    """Each key feature's daily use against its own normal, measured like active users (the
    same weekday-aware normal, noise and volume guards, and an open flag held against the level
    before the fall until it recovers): one reason per feature, naming it."""
    reasons = []
    for name in rule.key_features:
        values = state.usage.daily_metrics.get(name, ())
        measure = Measure(f"Use of {name.replace('_', ' ')}", plural=False)
        key = f"key_feature_decline:{name}"
        reasons += metric_drop(
            state, values, rule, "key_feature_decline", key, measure, extra={"feature": name}
        )
    return reasons


def onboarding_stalled(state: AccountState, rule: OnboardingRule, now: datetime) -> list[Reason]:
    """Milestones a new account should reach within `within_days`, still at zero."""
    usage, start = state.usage, state.onboarding_start
    if start is None or not rule.milestones:
        return []
    age = (usage.last_day - start).days + 1
    if age < rule.within_days or age > rule.within_days + STALLED_REMINDER_DAYS:
        return []  # too early to tell, or long past onboarding
    missing = [name for name in rule.milestones if not sum(usage.daily_metrics.get(name, ()))]
    if not missing:
        return []
    names = ", ".join(name.replace("_", " ") for name in missing)
    text = (
        f"Onboarding stalled: {age} days in, the account has not reached {names} "
        f"(expected within {rule.within_days} days)."
    )
    details = {"metric": "onboarding_milestones", "missing": missing, "age_days": age}
    return [Reason("onboarding_stalled", "onboarding_stalled", text, RiskLevel.MEDIUM, details)]
