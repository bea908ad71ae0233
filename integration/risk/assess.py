"""Risk rules: pure functions from an account's state to reasons a rep can believe.

No Redis, no HTTP, no clock: the caller passes `now`. Each rule returns the reasons it found (with
the numbers behind them); `assess` combines them into one RiskAssessment.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import date, datetime, timedelta
from functools import lru_cache
from typing import Any

from integration.config.schema import (
    HISTORY_DAYS_KEPT,
    ChampionLeftRule,
    RenewalRule,
    RiskConfig,
    UsageDropRule,
)
from integration.risk.baselines import (
    WEEK,
    Comparison,
    compare,
    days_below,
    seasonally_adjusted,
    year_over_year,
)
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.rules import (
    champion_joined,
    csat_low,
    inactivity,
    key_feature_not_adopted,
    license_utilization,
    long_open_tickets,
    low_stickiness,
    new_decision_maker,
    nps_detractor,
    onboarding_stalled,
    support_ticket_spike,
    utilization_growth,
)
from integration.signals.accounts import AccountState, UsageHistory, fact_date
from integration.signals.events import ChangeType

_RANK = {RiskLevel.NONE: 0, RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3}
_SCORE = {RiskLevel.NONE: 0, RiskLevel.LOW: 15, RiskLevel.MEDIUM: 35, RiskLevel.HIGH: 60}
# A drop this many times the configured threshold (capped at 100%) makes the flag high, not medium.
HIGH_DROP_FACTOR = 1.5
MIN_SEASONAL_RATIO = 0.1
# Reasons that are opportunities, not risk: they do not make a renewal riskier.
NOT_RISK = frozenset({"new_decision_maker", "champion_joined", "utilization_growth"})
LEAVING_CHANGES = frozenset({ChangeType.COMPANY_CHANGE, ChangeType.LEFT_COMPANY})


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    account_id: str
    level: RiskLevel
    score: int
    reasons: tuple[Reason, ...]
    usage_trend_pct: float | None
    license_utilization_pct: float | None
    last_active_date: date | None

    @property
    def reason_keys(self) -> frozenset[str]:
        return frozenset(reason.key for reason in self.reasons)


def history_days_needed(rules: RiskConfig) -> int:
    """How many days of active users and logins the rules read (a year more when seasonal),
    the most any rule needs, segments included."""
    needed = [other_days_needed(rules)]
    for segment in (None, *rules.segments):
        applied = rules.for_segment(segment)
        needed += [applied.usage_drop.history_days(), applied.login_frequency_drop.history_days()]
    return min(max(needed), HISTORY_DAYS_KEPT)


def other_days_needed(rules: RiskConfig) -> int:
    """How many days of the other metrics (events, NPS, CSAT, tickets, features) the rules read:
    reading only these, not a year of each, is a third of the daily evaluation's time."""
    needed = []
    for segment in (None, *rules.segments):
        applied = rules.for_segment(segment)
        needed += [
            applied.onboarding_stalled.within_days + 31,
            applied.key_feature_not_adopted.days,
            applied.nps_detractor.days,
            applied.csat_low.days,
            9 * WEEK,
        ]
    return min(max(needed), HISTORY_DAYS_KEPT)


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


def champion_left(state: AccountState, rule: ChampionLeftRule, now: datetime) -> list[Reason]:
    """A champion of this account left it (changed company or left) within `remember_days`."""
    reasons = []
    for person in state.people:
        if (
            not person.was_champion(rule.champion_labels)
            or person.change_type not in LEAVING_CHANGES
        ):
            continue
        if person.previous_account_id != state.account_id:
            continue
        if now - person.detected_at > timedelta(days=rule.remember_days):
            continue
        role = f", {person.previous_job_title}," if person.previous_job_title else ""
        where = f" for {person.current_company_name}" if person.current_company_name else ""
        text = (
            f"Champion {person.full_name}{role} left the account"
            f"{where} (reported by {person.source} on {person.detected_at.date().isoformat()})."
        )
        details = {
            "person": person.full_name,
            "email": person.email,
            "previous_title": person.previous_job_title,
            "new_company": person.current_company_name,
            "new_title": person.current_job_title,
            "source": person.source,
        }
        key = f"champion_left:{person.email or person.full_name}"
        reasons.append(Reason("champion_left", key, text, RiskLevel.HIGH, details))
    return reasons


RULES: dict[str, Callable[[AccountState, Any, datetime], list[Reason]]] = {
    "usage_drop": usage_drop,
    "login_frequency_drop": login_frequency_drop,
    "champion_left": champion_left,
    "inactivity": inactivity,
    "license_utilization": license_utilization,
    "champion_joined": champion_joined,
    "new_decision_maker": new_decision_maker,
    "nps_detractor": nps_detractor,
    "support_ticket_spike": support_ticket_spike,
    "long_open_tickets": long_open_tickets,
    "csat_low": csat_low,
    "utilization_growth": utilization_growth,
    "key_feature_not_adopted": key_feature_not_adopted,
    "onboarding_stalled": onboarding_stalled,
    "low_stickiness": low_stickiness,
}
__all__ = ["RULES", "Reason", "RiskAssessment", "RiskLevel", "assess"]


def assess(state: AccountState, rules: RiskConfig, now: datetime) -> RiskAssessment:
    """Run every enabled rule (with the account's segment overrides) and combine: level is the
    worst reason, raised one step when a renewal is near; score adds up, capped."""
    rules = rules.for_segment(state.facts.get("segment"))
    by_key: dict[str, Reason] = {}
    for name, rule_function in RULES.items():
        rule = getattr(rules, name)
        if rule.enabled:
            # One reason per key: a departure reported by two sources is one departure.
            for reason in rule_function(state, rule, now):
                by_key.setdefault(reason.key, reason)
    reasons = list(by_key.values())
    level = max((r.severity for r in reasons), key=_RANK.__getitem__, default=RiskLevel.NONE)
    risks = [r for r in reasons if r.code not in NOT_RISK]
    # The same fall in people and in their logins is one fact; say it once.
    if any(r.code == "usage_drop" for r in risks):
        reasons = [r for r in reasons if r.code != "login_frequency_drop"]
    renewal = renewal_near(state, rules.renewal, now) if risks and rules.renewal.enabled else None
    if renewal is not None:
        reasons.append(renewal)
        level = _one_step_up(level)
    comparison = usage_comparison(state.usage, rules.usage_drop)
    return RiskAssessment(
        account_id=state.account_id,
        level=level,
        score=min(100, sum(_SCORE[r.severity] for r in reasons)),
        reasons=tuple(reasons),
        usage_trend_pct=round(comparison.change_pct, 1) if comparison else None,
        license_utilization_pct=_utilization_pct(state),
        last_active_date=state.usage.last_active.date() if state.usage.last_active else None,
    )


def renewal_near(state: AccountState, rule: RenewalRule, now: datetime) -> Reason | None:
    """The renewal date (a CRM fact) falls within `within_days`: open risk costs more now."""
    renewal = fact_date(state.facts.get("renewal_date", ""))
    if renewal is None:
        return None
    days = (renewal - now.date()).days
    if not 0 <= days <= rule.within_days:
        return None
    text = f"The renewal is on {renewal.isoformat()}, {days} days away, with the risks above open."
    details = {
        "renewal_date": renewal.isoformat(),
        "days_to_renewal": days,
        "threshold": rule.within_days,
    }
    return Reason("renewal_near", "renewal_near", text, RiskLevel.LOW, details)


def _one_step_up(level: RiskLevel) -> RiskLevel:
    order = sorted(_RANK, key=_RANK.__getitem__)
    return order[min(_RANK[level] + 1, len(order) - 1)]


def _utilization_pct(state: AccountState) -> float | None:
    if not state.seats:
        return None
    return round(state.usage.active_users_30d / state.seats * 100, 1)


def reasons_text(reasons: Sequence[Reason]) -> str:
    """All reasons as one field value, one sentence per line."""
    return "\n".join(reason.text for reason in reasons)


def assessment_to_json(assessment: RiskAssessment) -> dict[str, Any]:
    return {
        "account_id": assessment.account_id,
        "level": assessment.level.value,
        "score": assessment.score,
        "reasons": [
            {
                "code": r.code,
                "key": r.key,
                "text": r.text,
                "severity": r.severity.value,
                "details": r.details,
            }
            for r in assessment.reasons
        ],
        "usage_trend_pct": assessment.usage_trend_pct,
        "license_utilization_pct": assessment.license_utilization_pct,
        "last_active_date": (
            assessment.last_active_date.isoformat() if assessment.last_active_date else None
        ),
    }


def assessment_from_json(data: dict[str, Any]) -> RiskAssessment:
    last_active = data.get("last_active_date")
    return RiskAssessment(
        account_id=data["account_id"],
        level=RiskLevel(data["level"]),
        score=int(data["score"]),
        reasons=tuple(
            Reason(r["code"], r["key"], r["text"], RiskLevel(r["severity"]), r["details"])
            for r in data["reasons"]
        ),
        usage_trend_pct=data.get("usage_trend_pct"),
        license_utilization_pct=data.get("license_utilization_pct"),
        last_active_date=date.fromisoformat(last_active) if last_active else None,
    )
