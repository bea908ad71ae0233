"""Further risk rules: pure functions of an account's state, each with a sentence a rep believes.

Kept apart from risk.py (usage drop, champion left, and the combination of all reasons) so each
module stays small; risk.RULES lists them all.
"""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from integration.accounts import AccountState
from integration.config import DecisionMakerRule, InactivityRule, UtilizationRule
from integration.reasons import Reason, RiskLevel
from integration.signals import ChangeType

ARRIVING = frozenset({ChangeType.COMPANY_CHANGE, ChangeType.PROMOTION})


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


def license_utilization(state: AccountState, rule: UtilizationRule, now: datetime) -> list[Reason]:
    """Few of the purchased seats are in use: the renewal conversation starts at a discount."""
    seats, active = state.usage.seats, state.usage.active_users_30d
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


def new_decision_maker(state: AccountState, rule: DecisionMakerRule, now: datetime) -> list[Reason]:
    """Someone with a buying title joined or was promoted into the account: meet them early."""
    patterns = [re.compile(p, re.IGNORECASE) for p in rule.title_patterns]
    reasons = []
    for person in state.people:
        if person.change_type not in ARRIVING or person.current_account_id != state.account_id:
            continue
        title = person.current_job_title or ""
        if not any(p.search(title) for p in patterns):
            continue
        if now - person.detected_at > timedelta(days=rule.remember_days):
            continue
        verb = "was promoted to" if person.change_type is ChangeType.PROMOTION else "joined as"
        text = (
            f"{person.full_name} {verb} {title} (reported by {person.source} on "
            f"{person.detected_at.date().isoformat()}): a new decision-maker to meet."
        )
        details = {
            "person": person.full_name,
            "email": person.email,
            "new_title": title,
            "source": person.source,
        }
        key = f"new_decision_maker:{person.email or person.full_name}"
        reasons.append(Reason("new_decision_maker", key, text, RiskLevel.LOW, details))
    return reasons
