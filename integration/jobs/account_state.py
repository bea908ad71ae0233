"""What an evaluation reads and writes around the pure rules: each account's state (history,
people signals, CRM facts) for a whole batch in a few round trips, the last assessments, and the
CRM fields that changed since the CRM last took them."""

from __future__ import annotations

import json
import logging
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime, timedelta

from adapters.protocol import CrmAccount, FieldUpdate, FieldValue
from integration.config.schema import FieldMap
from integration.errors import CrmRetriableError
from integration.jobs.context import Context
from integration.risk.assess import (
    RiskAssessment,
    assess,
    assessment_from_json,
    history_days_needed,
    other_days_needed,
)
from integration.risk.fields import field_values
from integration.signals.accounts import AccountState, UsageHistory
from integration.signals.events import JobChanged
from integration.store import freshness, keys, rollups
from integration.store.cluster import StateRedis, get_many
from playbooks.waterfall import Judged

logger = logging.getLogger(__name__)

PEOPLE_MEMORY = timedelta(days=730)


def judged_now(now: datetime, last_day: date) -> datetime:
    """The moment the rules judge at: `now` moved back by as many days as the account's
    judged day lags yesterday (a source behind, integration/store/freshness.py), so days
    without data yet read neither as inactivity nor as a drop."""
    return now - timedelta(days=max(0, (now.date() - timedelta(days=1) - last_day).days))


def load_states(
    context: Context,
    account_ids: Sequence[str],
    now: datetime,
    facts: Mapping[str, Mapping[str, str]] | None = None,
) -> dict[str, AccountState]:
    """Everything the rules read for many accounts, in three round trips. Each account's
    history ends on its judged day: the freshness watermark of the sources that feed it, never
    later than yesterday (the current day is still filling up; judging it against full days
    would invent drops)."""
    days = history_days_needed(context.config.risk)
    other_days = other_days_needed(context.config.risk)
    last_days = freshness.judged_days(
        context.redis,
        account_ids,
        now.date() - timedelta(days=1),
        now,
        context.config.evaluation.backfill_quiet_seconds,
    )
    names = context.config.metrics.names()
    usage: dict[str, UsageHistory] = {}
    for last_day in sorted(set(last_days.values())):
        ids = [account_id for account_id in account_ids if last_days[account_id] == last_day]
        usage |= rollups.load_histories(
            context.redis, ids, judged_now(now, last_day), last_day, days, names, other_days
        )
    pipe = context.redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.hvals(keys.people_signals(account_id))
    people = pipe.execute()
    return {
        account_id: AccountState(
            account_id, usage[account_id], _people(raw, now), (facts or {}).get(account_id, {})
        )
        for account_id, raw in zip(account_ids, people, strict=True)
    }


def _people(raw_signals: Sequence[bytes], now: datetime) -> tuple[JobChanged, ...]:
    """People signals known as of `now` (a replay as of a past date sees none from after it)."""
    people = []
    for raw in raw_signals:
        change = JobChanged.from_json(json.loads(raw))
        if timedelta(0) <= now - change.detected_at <= PEOPLE_MEMORY:
            people.append(change)
    return tuple(sorted(people, key=lambda person: person.detected_at))


def load_previous(
    redis: StateRedis, account_ids: Sequence[str]
) -> dict[str, RiskAssessment | None]:
    """Each account's last assessment, for a whole batch in one round trip (per node)."""
    raws = get_many(redis, [keys.assessment(account_id) for account_id in account_ids])
    return {
        account_id: assessment_from_json(json.loads(raw)) if raw else None
        for account_id, raw in zip(account_ids, raws, strict=True)
    }


def _loaded(raw: bytes | str | None) -> object:
    return json.loads(raw) if raw is not None else None


def judge_accounts(
    context: Context, found: Mapping[str, CrmAccount], now: datetime
) -> tuple[list[Judged], dict[str, date]]:
    """Judge the accounts the CRM has, as an evaluation does: each against its last
    assessment (so a reason keeps its details), on the days its sources have delivered.
    Also returns the day each account was judged through."""
    ids = sorted(found)
    states = load_states(context, ids, now, {a: account.facts for a, account in found.items()})
    previous = load_previous(context.redis, ids)
    judged = []
    for account_id in ids:
        before, state = previous[account_id], states[account_id]
        if before is not None:
            state = replace(state, previous_reasons={r.key: r.details for r in before.reasons})
        after = assess(state, context.config.risk, judged_now(now, state.usage.last_day))
        judged.append(Judged(found[account_id], before, after))
    return judged, {account_id: states[account_id].usage.last_day for account_id in ids}


@dataclass(frozen=True, slots=True)
class FieldWrites:
    """The CRM fields to write: what differs from what the CRM last accepted."""

    updates: list[FieldUpdate]
    # Every judged account's values, by CRM id, with its product account id.
    wanted: dict[str, tuple[str, dict[str, FieldValue]]]


def fields_to_write(redis: StateRedis, mapping: FieldMap, judged: Sequence[Judged]) -> FieldWrites:
    """Which accounts' fields to write (shared by the run and `integration plan`)."""
    wanted = {
        item.account.crm_id: (item.after.account_id, field_values(item.after, mapping))
        for item in judged
    }
    written_keys = [keys.crm_fields(account_id) for account_id, _ in wanted.values()]
    last = dict(zip(wanted, get_many(redis, written_keys), strict=True))
    updates = [
        FieldUpdate(crm_id, values)
        for crm_id, (_, values) in wanted.items()
        if _loaded(last[crm_id]) != values
    ]
    return FieldWrites(updates, wanted)


def write_fields(context: Context, evaluated: Sequence[Judged]) -> None:
    """Write what differs from what the CRM last accepted. A postponed write (rate limit, the
    daily API budget) is skipped, not fatal: the actions still run, and the next evaluation
    compares against the last values the CRM took, so it writes them then."""
    writes = fields_to_write(context.redis, context.config.fields, evaluated)
    if not writes.updates:
        return
    try:
        result = context.crm.write_fields(writes.updates)
    except CrmRetriableError as exc:
        logger.warning("field writes postponed; tasks go on", extra={"error": str(exc)})
        return
    pipe = context.redis.pipeline(transaction=False)
    for crm_id in result.written:
        account_id, values = writes.wanted[crm_id]
        pipe.set(keys.crm_fields(account_id), json.dumps(values))
    pipe.execute()
    for crm_id, message in result.rejected.items():
        logger.error(
            "CRM refused field update",
            extra={"crm_id": crm_id, "error": message, "crm": context.crm.name},
        )
