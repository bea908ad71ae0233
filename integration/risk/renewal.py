"""Renewal: the reason a renewal date near adds while risks are open (`assess` raises the level).
A pure function of an account's state; `now` is passed in."""

from __future__ import annotations

from datetime import datetime

from integration.config.schema import RenewalRule
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState, fact_date


def renewal_near(state: AccountState, rule: RenewalRule, now: datetime) -> Reason | None:
    """The renewal date (a CRM fact) falls within `within_days`: open risk costs more now."""
    renewal = fact_date(state.facts.get("renewal_date", ""))
    if renewal is None:
        return None
    days = (renewal - now.date()).days
    if not 0 <= days <= rule.within_days:
        return None
    text = (
        f"The renewal is on {renewal.isoformat()}, {days} days away, while other risks are open "
        "on the account."
    )
    details = {
        "renewal_date": renewal.isoformat(),
        "days_to_renewal": days,
        "threshold": rule.within_days,
    }
    return Reason("renewal_near", "renewal_near", text, RiskLevel.LOW, details)
