"""Support and satisfaction: NPS detractors, CSAT, ticket spikes, long-open tickets.
Pure functions of an account's state; `now` is passed in."""

from __future__ import annotations

from datetime import datetime

from integration.config.schema import CsatRule, NpsRule, OpenTicketsRule, TicketSpikeRule
from integration.risk.baselines import recent_total
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState

WEEKS_OF_NORMAL = 8


def nps_detractor(state: AccountState, rule: NpsRule, now: datetime) -> list[Reason]:
    """Someone at the account answered NPS with 6 or less recently."""
    metrics = state.usage.daily_metrics
    detractors = recent_total(metrics.get("nps_detractors", ()), rule.days)
    if not detractors:
        return []
    responses = recent_total(metrics.get("nps_responses", ()), rule.days)
    text = (
        f"{detractors} of {responses} NPS responses in the last {rule.days} days were "
        "detractors (a score of 6 or less)."
    )
    details = {
        "metric": "nps_detractors",
        "observed": detractors,
        "responses": responses,
        "window_days": rule.days,
    }
    severity = RiskLevel.MEDIUM if detractors * 2 >= responses else RiskLevel.LOW
    return [Reason("nps_detractor", "nps_detractor", text, severity, details)]


def support_ticket_spike(state: AccountState, rule: TicketSpikeRule, now: datetime) -> list[Reason]:
    """Tickets opened in the last week against the account's weekly normal over 8 weeks."""
    usage = state.usage
    opened = usage.daily_metrics.get("tickets_opened", ())
    needed = WEEKS_OF_NORMAL * 7 + 7
    if usage.first_day is None or (usage.last_day - usage.first_day).days + 1 < needed:
        return []  # a young account's weeks before it existed are not its normal
    if len(opened) < needed:
        return []
    week = recent_total(opened, 7)
    normal = sum(opened[-(WEEKS_OF_NORMAL * 7 + 7) : -7]) / WEEKS_OF_NORMAL
    if week < rule.min_tickets or week < rule.factor * max(normal, 1.0):
        return []
    text = (
        f"{week} support tickets were opened in the last 7 days, against {normal:.1f} "
        f"a week over the {WEEKS_OF_NORMAL} weeks before."
    )
    details = {"metric": "tickets_opened", "observed": week, "baseline": round(normal, 2)}
    return [Reason("support_ticket_spike", "support_ticket_spike", text, RiskLevel.MEDIUM, details)]


def long_open_tickets(state: AccountState, rule: OpenTicketsRule, now: datetime) -> list[Reason]:
    """Support tickets open for more than `days`: the customer is still waiting on us. Only
    tickets opened since closing events began to arrive count: a helpdesk that sends openings
    alone would make every ticket look open forever."""
    since = state.usage.ticket_closings_since
    if since is None:
        return []
    ages = [(now - opened).days for opened in state.usage.open_tickets if opened >= since]
    old = [age for age in ages if age >= rule.days]
    if len(old) < rule.min_tickets:
        return []
    count = f"{len(old)} support tickets have" if len(old) > 1 else "A support ticket has"
    oldest = f" (the oldest for {max(old)} days)" if len(old) > 1 else f" ({old[0]} days)"
    text = f"{count} been open for more than {rule.days} days{oldest}."
    details = {
        "metric": "open_tickets",
        "observed": len(old),
        "oldest_days": max(old),
        "threshold_days": rule.days,
    }
    severity = RiskLevel.MEDIUM if len(old) >= 3 or max(old) >= 2 * rule.days else RiskLevel.LOW
    return [Reason("long_open_tickets", "long_open_tickets", text, severity, details)]


def csat_low(state: AccountState, rule: CsatRule, now: datetime) -> list[Reason]:
    """The share of satisfied CSAT answers in the last `days` fell below the threshold."""
    metrics = state.usage.daily_metrics
    responses = recent_total(metrics.get("csat_responses", ()), rule.days)
    if responses < rule.min_responses:
        return []
    satisfied = recent_total(metrics.get("csat_satisfied", ()), rule.days)
    share = satisfied / responses * 100
    if share >= rule.below_pct:
        return []
    text = (
        f"Only {satisfied} of {responses} CSAT responses in the last {rule.days} days were "
        f"satisfied ({share:.0f}%, below {rule.below_pct:.0f}%)."
    )
    details = {
        "metric": "csat_pct",
        "observed": round(share, 1),
        "threshold": rule.below_pct,
        "responses": responses,
        "window_days": rule.days,
    }
    severity = RiskLevel.MEDIUM if share < rule.below_pct / 2 else RiskLevel.LOW
    return [Reason("csat_low", "csat_low", text, severity, details)]
