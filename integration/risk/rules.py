"""Further risk rules: pure functions of an account's state, each with a sentence a rep believes.

Kept apart from risk.py (usage drop, champion left, and the combination of all reasons) so each
module stays small; risk.RULES lists them all.
"""

from __future__ import annotations

import re
from collections.abc import Sequence
from datetime import datetime, timedelta

from integration.config.schema import (
    AdoptionRule,
    ChampionJoinedRule,
    CsatRule,
    DecisionMakerRule,
    InactivityRule,
    NpsRule,
    OnboardingRule,
    OpenTicketsRule,
    StickinessRule,
    TicketSpikeRule,
    UtilizationGrowthRule,
    UtilizationRule,
)
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState
from integration.signals.events import ChangeType

ARRIVING = frozenset({ChangeType.COMPANY_CHANGE, ChangeType.PROMOTION})
WEEKS_OF_NORMAL = 8
STICKINESS_DAYS = 28
STALLED_REMINDER_DAYS = 30  # keep saying it for a month after the deadline, then stop


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


def new_decision_maker(state: AccountState, rule: DecisionMakerRule, now: datetime) -> list[Reason]:
    """Someone with a buying title joined or was promoted into the account: meet them early."""
    patterns = [re.compile(p, re.IGNORECASE) for p in rule.title_patterns]
    reasons = []
    for person in state.people:
        if person.change_type not in ARRIVING or person.current_account_id != state.account_id:
            continue
        if person.was_champion():
            continue  # a former champion arriving is told by champion_joined, more usefully
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


def _recent(values: Sequence[int], days: int) -> int:
    return sum(values[-days:]) if days else 0


def nps_detractor(state: AccountState, rule: NpsRule, now: datetime) -> list[Reason]:
    """Someone at the account answered NPS with 6 or less recently."""
    metrics = state.usage.daily_metrics
    detractors = _recent(metrics.get("nps_detractors", ()), rule.days)
    if not detractors:
        return []
    responses = _recent(metrics.get("nps_responses", ()), rule.days)
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
    week = _recent(opened, 7)
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
    responses = _recent(metrics.get("csat_responses", ()), rule.days)
    if responses < rule.min_responses:
        return []
    satisfied = _recent(metrics.get("csat_satisfied", ()), rule.days)
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


def key_feature_not_adopted(state: AccountState, rule: AdoptionRule, now: datetime) -> list[Reason]:
    """A configured key feature went unused for `days` by an account at least that old."""
    usage = state.usage
    if usage.first_day is None or (usage.last_day - usage.first_day).days + 1 < rule.days:
        return []
    unused = [
        name
        for name in rule.key_features
        if not _recent(usage.daily_metrics.get(name, ()), rule.days)
    ]
    if not unused:
        return []
    names = ", ".join(name.replace("_", " ") for name in unused)
    text = f"No one used {names} in the last {rule.days} days."
    details = {"metric": "key_features", "unused": unused, "window_days": rule.days}
    return [
        Reason("key_feature_not_adopted", "key_feature_not_adopted", text, RiskLevel.LOW, details)
    ]


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


def champion_joined(state: AccountState, rule: ChampionJoinedRule, now: datetime) -> list[Reason]:
    """Someone who championed us elsewhere joined this account: they can open doors here."""
    reasons = []
    for person in state.people:
        came_from = person.previous_company_name or person.previous_account_id or "another account"
        champion = person.was_champion(rule.champion_labels)
        if (
            person.change_type is not ChangeType.COMPANY_CHANGE
            or not champion
            or person.current_account_id != state.account_id
            or person.previous_account_id == state.account_id
            or now - person.detected_at > timedelta(days=rule.remember_days)
        ):
            continue
        title = f" as {person.current_job_title}" if person.current_job_title else ""
        text = (
            f"{person.full_name}, a champion at {came_from}, joined{title} "
            f"(reported by {person.source} on {person.detected_at.date().isoformat()}): "
            "a warm introduction."
        )
        details = {
            "person": person.full_name,
            "email": person.email,
            "from": came_from,
            "new_title": person.current_job_title,
            "source": person.source,
        }
        key = f"champion_joined:{person.email or person.full_name}"
        reasons.append(Reason("champion_joined", key, text, RiskLevel.LOW, details))
    return reasons
