"""People: a champion who left or joined, a new decision-maker, from job-change signals.
Pure functions of an account's state; `now` is passed in."""

from __future__ import annotations

import re
from datetime import datetime, timedelta

from integration.config.schema import ChampionJoinedRule, ChampionLeftRule, DecisionMakerRule
from integration.risk.reasons import Reason, RiskLevel
from integration.signals.accounts import AccountState
from integration.signals.events import ChangeType

LEAVING_CHANGES = frozenset({ChangeType.COMPANY_CHANGE, ChangeType.LEFT_COMPANY})
ARRIVING = frozenset({ChangeType.COMPANY_CHANGE, ChangeType.PROMOTION})


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


def champion_joined(state: AccountState, rule: ChampionJoinedRule, now: datetime) -> list[Reason]:
    """Someone who championed us elsewhere joined this account: they can open doors here."""
    reasons = []
    for person in state.people:
        # A name or domain a rep knows; our product's account id means nothing to them.
        came_from = (
            person.previous_company_name or person.previous_company_domain or "another customer"
        )
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
