"""What signals and evaluations add to the accounts' audit trails (integration/store/history.py):
a people signal with who moved where, the assessments whose reasons or level changed, each
reason that cleared, and a renewal's outcome once the mapped field turns renewed or churned.

The events are built here and recorded by the caller in one round trip per batch (after one
that leaves out an assessment a retried evaluation finds in the trail already).
"""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from integration.config.schema import Outcomes
from integration.jobs.context import Context
from integration.risk.assess import RiskAssessment, assessment_to_json
from integration.signals.events import ChangeType, JobChanged
from integration.store import history, keys
from integration.store.cluster import StateRedis, get_many
from integration.store.history import Event
from playbooks.waterfall import Judged

# Outcomes kept per account in its outcomes list (keys.outcomes), newest first.
OUTCOMES_KEEP = 200


def people_signal(change: JobChanged, account_id: str, now: datetime) -> Event:
    """A job change as received: its source, the sender's event id, who moved where."""
    return history.event(
        account_id,
        "signal",
        now,
        source=change.source,
        delivery_id=change.event_id,
        summary=people_summary(change, account_id),
        change_type=change.change_type.value,
    )


def people_summary(change: JobChanged, account_id: str) -> str:
    """One line a RevOps admin reads: "Priya Natarajan left for Umbrella Corp"."""
    name = change.full_name or change.email or "someone"
    was = f" ({change.previous_job_title})" if change.previous_job_title else ""
    champion = "champion " if change.was_champion() else ""
    if change.change_type is ChangeType.PROMOTION:
        return f"{champion}{name} became {change.current_job_title or 'something new'}"
    joined = change.current_company_name
    if change.change_type is ChangeType.COMPANY_CHANGE and account_id == change.current_account_id:
        return f"{champion}{name}{was} joined from {change.previous_company_name or 'elsewhere'}"
    where = f"for {joined}" if joined else (change.previous_company_name or "the account")
    return f"{champion}{name}{was} left {where}"


def unrecorded_assessments(redis: StateRedis, events: Sequence[Event]) -> list[Event]:
    """The assessment events (and the reason_cleared beside them) the trail does not say
    already: an evaluation retried after its trail was written (a worker lost before the
    assessment was kept) finds its assessment there, level and reasons alike, and adds none.
    One round trip."""
    made = {item.account_id: item for item in events if item.kind == "assessment"}
    there = history.newest(redis, list(made), "assessment")
    said = {
        account_id
        for account_id, item in made.items()
        if account_id in there and _said_json(there[account_id]) == _said_json(item)
    }
    return [item for item in events if item.account_id not in said]


def _said_json(item: Event) -> tuple[str, frozenset[tuple[str, str]]]:
    """_said of an assessment entry."""
    reasons = item.fields.get("reasons") or []
    pairs = frozenset((str(r.get("key")), str(r.get("severity"))) for r in reasons)
    return str(item.fields.get("level")), pairs


def assessment_events(judged: Sequence[Judged], now: datetime) -> list[Event]:
    """Per account: an assessment when its reasons or level changed (or it is the first),
    and a reason_cleared for each reason it no longer has."""
    events = []
    for item in judged:
        before, after = item.before, item.after
        if before is not None and _said(before) == _said(after):
            continue
        events.append(assessment_event(after, before, now))
        kept = after.reason_keys
        events += [
            history.event(
                after.account_id,
                "reason_cleared",
                now,
                key=reason.key,
                code=reason.code,
                text=reason.text,
                severity=reason.severity.value,
            )
            for reason in (before.reasons if before else ())
            if reason.key not in kept
        ]
    return events


def assessment_event(after: RiskAssessment, before: RiskAssessment | None, now: datetime) -> Event:
    """The assessment's level, score and reasons with their numbers, as it is kept
    (integration/risk/assess.py assessment_to_json)."""
    kept = assessment_to_json(after)
    return history.event(
        after.account_id,
        "assessment",
        now,
        level=kept["level"],
        score=kept["score"],
        previous_level=before.level.value if before else None,
        reasons=kept["reasons"],
    )


def _said(assessment: RiskAssessment) -> tuple[str, frozenset[tuple[str, str]]]:
    """What a change of makes an entry: the level and each reason's key and severity (not
    its numbers, which move with every day of usage)."""
    reasons = frozenset((r.key, r.severity.value) for r in assessment.reasons)
    return assessment.level.value, reasons


def renewal_events(
    context: Context, judged: Sequence[Judged], now: datetime
) -> tuple[list[Event], dict[str, str]]:
    """Where account_facts.renewal_status is mapped: a `renewal` outcome for each account
    whose field changed, since the evaluation before, to a renewed or churned value (the
    first value seen is remembered, not an outcome: nobody saw it change); and the values to
    remember (keep_renewals, once the events are recorded)."""
    field = context.config.account_facts.renewal_status
    if not field or not judged:
        return [], {}
    ids = [item.after.account_id for item in judged]
    seen = get_many(context.redis, [keys.renewal_seen(account_id) for account_id in ids])
    events, changed = [], {}
    for item, raw in zip(judged, seen, strict=True):
        value = item.account.facts.get("renewal_status", "")
        before = keys.text(raw) if raw is not None else None
        if value == (before or ""):
            continue
        changed[item.after.account_id] = value
        outcome = renewal_outcome(value, context.config.outcomes)
        if before is not None and outcome is not None:
            events.append(
                history.event(
                    item.after.account_id, "renewal", now, outcome=outcome, value=value, field=field
                )
            )
    return events, changed


def keep_renewals(context: Context, events: Sequence[Event], changed: dict[str, str]) -> None:
    """The renewal outcomes in each account's outcomes list (the trail is never their only
    copy), then the values the evaluation saw, for the next one to compare (one round trip)."""
    if not changed:
        return
    pipe = context.redis.pipeline(transaction=False)
    for item in events:
        pipe.lpush(keys.outcomes(item.account_id), json.dumps(outcome_json(item)))
        pipe.ltrim(keys.outcomes(item.account_id), 0, OUTCOMES_KEEP - 1)
    for account_id, value in changed.items():
        pipe.set(keys.renewal_seen(account_id), value)
    pipe.execute()


def outcome_json(item: Event) -> dict[str, object]:
    """An outcome (task_completed, renewal) as the account's outcomes list keeps it."""
    return {"kind": item.kind, "at": item.at.isoformat(), **item.fields}


def renewal_outcome(value: str, outcomes: Outcomes) -> str | None:
    """renewed, churned, or None for any other value (case aside)."""
    wanted = value.strip().lower()
    if wanted in {v.lower() for v in outcomes.renewed_values}:
        return "renewed"
    if wanted in {v.lower() for v in outcomes.churned_values}:
        return "churned"
    return None
