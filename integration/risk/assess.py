"""Combine every rule's reasons into one RiskAssessment: the level, the score, the field values.

The rules live one module per family of signal (usage, adoption, people, support, renewal);
RULES lists them all. No Redis, no HTTP, no clock: the caller passes `now`.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Any

from integration.config.schema import HISTORY_DAYS_KEPT, KeyFeatureDeclineRule, RiskConfig
from integration.risk.adoption import (
    key_feature_decline,
    key_feature_not_adopted,
    license_utilization,
    onboarding_stalled,
    utilization_growth,
)
from integration.risk.baselines import WEEK
from integration.risk.people import champion_joined, champion_left, new_decision_maker
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.renewal import renewal_near
from integration.risk.support import (
    csat_low,
    long_open_tickets,
    nps_detractor,
    support_ticket_spike,
)
from integration.risk.trends import Trend, reason_trends, trend_from_json, trend_to_json
from integration.risk.usage import (
    inactivity,
    login_frequency_drop,
    low_stickiness,
    usage_comparison,
    usage_decline,
    usage_drop,
)
from integration.signals.accounts import AccountState

_RANK = {RiskLevel.NONE: 0, RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3}
_SCORE = {RiskLevel.NONE: 0, RiskLevel.LOW: 15, RiskLevel.MEDIUM: 35, RiskLevel.HIGH: 60}
# Reasons that are opportunities, not risk: they do not make a renewal riskier.
NOT_RISK = frozenset({"new_decision_maker", "champion_joined", "utilization_growth"})
# The same fall in people said by a finer rule is one fact: say it once, by the first listed.
FOLDED_INTO_USAGE_DROP = frozenset({"login_frequency_drop", "usage_decline"})
# Reasons whose details say how far usage is below normal: the usage trend field reads it.
USAGE_FALLS = ("usage_drop", "usage_decline")


@dataclass(frozen=True, slots=True)
class RiskAssessment:
    account_id: str
    level: RiskLevel
    score: int
    reasons: tuple[Reason, ...]
    usage_trend_pct: float | None
    license_utilization_pct: float | None
    last_active_date: date | None
    # The last 8 weeks of the metric behind each reason that has one, by reason key.
    trends: Mapping[str, Trend] = field(default_factory=dict)

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
        if applied.slow_decline.enabled:
            needed.append(applied.slow_decline.history_days())
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
            _key_feature_decline(applied).history_days()
            if applied.key_feature_decline.enabled
            else 0,
            applied.nps_detractor.days,
            applied.csat_low.days,
            9 * WEEK,
        ]
    return min(max(needed), HISTORY_DAYS_KEPT)


RULES: dict[str, Callable[[AccountState, Any, datetime], list[Reason]]] = {
    "usage_drop": usage_drop,
    "login_frequency_drop": login_frequency_drop,
    "slow_decline": usage_decline,
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
    "key_feature_decline": key_feature_decline,
    "onboarding_stalled": onboarding_stalled,
    "low_stickiness": low_stickiness,
}


def assess(state: AccountState, rules: RiskConfig, now: datetime) -> RiskAssessment:
    """Run every enabled rule (with the account's segment overrides) and combine: level is the
    worst reason, raised one step when a renewal is near; score adds up, capped."""
    rules = rules.for_segment(state.facts.get("segment"))
    by_key: dict[str, Reason] = {}
    for name, rule_function in RULES.items():
        rule = (
            _key_feature_decline(rules) if name == "key_feature_decline" else getattr(rules, name)
        )
        if rule.enabled:
            # One reason per key: a departure reported by two sources is one departure.
            for reason in rule_function(state, rule, now):
                by_key.setdefault(reason.key, reason)
    reasons = list(by_key.values())
    level = max((r.severity for r in reasons), key=_RANK.__getitem__, default=RiskLevel.NONE)
    risks = [r for r in reasons if r.code not in NOT_RISK]
    # The same fall in people, in their logins, or over a quarter is one fact; say it once.
    if any(r.code == "usage_drop" for r in risks):
        reasons = [r for r in reasons if r.code not in FOLDED_INTO_USAGE_DROP]
    # A feature nobody uses at all is said by key_feature_not_adopted, not as a decline too.
    unused = {
        name for r in reasons if r.code == "key_feature_not_adopted" for name in r.details["unused"]
    }
    reasons = [
        r
        for r in reasons
        if not (r.code == "key_feature_decline" and r.details["feature"] in unused)
    ]
    renewal = renewal_near(state, rules.renewal, now) if risks and rules.renewal.enabled else None
    if renewal is not None:
        reasons.append(renewal)
        level = _one_step_up(level)
    comparison = usage_comparison(state.usage, rules.usage_drop)
    trend = round(comparison.change_pct, 1) if comparison else None
    # A fall still flagged is measured against the level before it, not a normal that slid
    # into it: the trend field says the same as the reason.
    fall = next((r for code in USAGE_FALLS for r in reasons if r.code == code), None)
    if fall is not None:
        trend = -float(fall.details["drop_pct"])
    return RiskAssessment(
        account_id=state.account_id,
        level=level,
        score=min(100, sum(_SCORE[r.severity] for r in reasons)),
        reasons=tuple(reasons),
        usage_trend_pct=trend,
        license_utilization_pct=_utilization_pct(state),
        last_active_date=state.usage.last_active.date() if state.usage.last_active else None,
        trends=reason_trends(reasons, state.usage),
    )


def _key_feature_decline(rules: RiskConfig) -> KeyFeatureDeclineRule:
    """The key-feature decline rule, reading key_feature_not_adopted's features unless it
    names its own."""
    rule = rules.key_feature_decline
    if rule.key_features or not rules.key_feature_not_adopted.key_features:
        return rule  # copying a rule costs more than all the usage rules of an account
    return rule.model_copy(update={"key_features": rules.key_feature_not_adopted.key_features})


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
        "trends": {key: trend_to_json(trend) for key, trend in assessment.trends.items()},
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
        # Assessments stored before trends existed have none.
        trends={key: trend_from_json(t) for key, t in (data.get("trends") or {}).items()},
    )
