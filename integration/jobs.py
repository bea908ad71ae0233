"""RQ jobs: load state from Redis, call the pure rules and engine, write to the CRM.

Jobs take primitives (ids, JSON), never clients. The process's Context is built once from Settings
on first use, or installed by whoever starts the worker (the CLI, the tests).
"""

from __future__ import annotations

import json
import logging
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, date, datetime, timedelta

from redis import Redis

from adapters.protocol import CrmAccount, FieldUpdate, FieldValue, TaskRequest
from integration import keys, rollups
from integration.accounts import AccountState
from integration.bootstrap import Context, build_context
from integration.config import FieldMap
from integration.errors import CrmFatalError, CrmRetriableError
from integration.risk import (
    RiskAssessment,
    assess,
    assessment_from_json,
    assessment_to_json,
    history_days_needed,
    reasons_text,
)
from integration.settings import Settings
from integration.signals import JobChanged
from playbooks.actions import CreateTask
from playbooks.engine import plan_actions

logger = logging.getLogger(__name__)

EVALUATION_BATCH = 200
UNMATCHED_KEEP = 1000
# A worker that died mid-action leaves its claim; after this long another may take the action.
ACTION_CLAIM_SECONDS = 120
ACTION_MEMORY_SECONDS = 400 * 24 * 3600
PEOPLE_MEMORY = timedelta(days=730)
_PENDING = "pending"

_context: Context | None = None


def install_context(context: Context | None) -> None:
    """Use this context for jobs run in this process (None: build it from Settings on next use)."""
    global _context  # noqa: PLW0603 - one context per worker process, set at start-up
    _context = context


def current_context() -> Context:
    if _context is None:
        install_context(build_context(Settings()))
    assert _context is not None  # noqa: S101 - narrowing for mypy; install_context just set it
    return _context


def evaluate_dirty_accounts() -> int:
    """Evaluate, in batches, every account that received usage since it was last evaluated."""
    context = current_context()
    total = 0
    while batch := rollups.take_dirty_accounts(context.redis, EVALUATION_BATCH):
        try:
            evaluate_accounts(context, batch, datetime.now(UTC))
        except Exception:
            # Put the batch back so RQ's retry (or the cron sweep) evaluates it; nothing is lost.
            rollups.mark_dirty(context.redis, batch)
            raise
        total += len(batch)
    return total


def process_job_change(change_json: dict[str, object]) -> str:
    """Remember a people signal on the account it concerns, then re-evaluate that account."""
    context = current_context()
    change = JobChanged.from_json(change_json)
    account_id = change.previous_account_id or _account_by_domain(
        context, change.previous_company_domain
    )
    if account_id is None:
        _record_unmatched(
            context.redis, "job_change", change.previous_company_domain or "", change.event_id
        )
        return "unmatched"
    context.redis.hset(
        keys.people_signals(account_id),
        change.dedupe_id,
        json.dumps(change.to_json() | {"previous_account_id": account_id}),
    )
    evaluate_accounts(context, [account_id], datetime.now(UTC))
    return account_id


def _account_by_domain(context: Context, domain: str | None) -> str | None:
    account = context.crm.find_account_by_domain(domain) if domain else None
    return account.product_account_id if account else None


@dataclass(frozen=True, slots=True)
class _Evaluated:
    account: CrmAccount
    before: RiskAssessment | None
    after: RiskAssessment


def evaluate_accounts(context: Context, account_ids: Sequence[str], now: datetime) -> None:
    """Assess accounts, write changed fields in one batch, then run the playbooks' actions."""
    found = context.crm.find_accounts(account_ids)
    for missing in sorted(set(account_ids) - set(found)):
        _record_unmatched(context.redis, "account", missing, "")
    evaluated = [
        _Evaluated(
            account,
            _load_assessment(context.redis, account_id),
            assess(load_state(context.redis, account_id, now, context), context.config.risk, now),
        )
        for account_id, account in sorted(found.items())
    ]
    _write_fields(context, evaluated)
    for item in evaluated:
        last_fired = _last_fired(context.redis, item.after.account_id)
        actions = plan_actions(
            item.before,
            item.after,
            item.account,
            context.playbooks,
            last_fired,
            now.date(),
            context.config.owners.fallback_owner,
        )
        for action in actions:
            run_action(context, action, now.date())
        context.redis.set(
            keys.assessment(item.after.account_id), json.dumps(assessment_to_json(item.after))
        )
        if item.after.reason_keys != (item.before.reason_keys if item.before else frozenset()):
            logger.info(
                "risk changed",
                extra={"account_id": item.after.account_id, "level": item.after.level.value},
            )


def load_state(redis: Redis, account_id: str, now: datetime, context: Context) -> AccountState:
    days = history_days_needed(context.config.risk)
    # The current day is still filling up; judging it against full days would invent drops.
    usage = rollups.load_history(redis, account_id, now.date() - timedelta(days=1), days)
    people = []
    for raw in redis.hvals(keys.people_signals(account_id)):
        change = JobChanged.from_json(json.loads(raw))
        if now - change.detected_at <= PEOPLE_MEMORY:
            people.append(change)
    return AccountState(account_id, usage, tuple(sorted(people, key=lambda p: p.detected_at)))


def _load_assessment(redis: Redis, account_id: str) -> RiskAssessment | None:
    raw = redis.get(keys.assessment(account_id))
    return assessment_from_json(json.loads(raw)) if raw else None


def field_values(assessment: RiskAssessment, fields: FieldMap) -> dict[str, FieldValue]:
    values: dict[str | None, FieldValue] = {
        fields.risk_level: assessment.level.value,
        fields.risk_reasons: reasons_text(assessment.reasons),
        fields.usage_trend_pct: assessment.usage_trend_pct,
        fields.license_utilization_pct: assessment.license_utilization_pct,
        fields.last_active_date: (
            assessment.last_active_date.isoformat() if assessment.last_active_date else None
        ),
    }
    return {name: value for name, value in values.items() if name is not None}


def _write_fields(context: Context, evaluated: Sequence[_Evaluated]) -> None:
    fields = context.config.fields
    updates = [
        FieldUpdate(item.account.crm_id, field_values(item.after, fields))
        for item in evaluated
        if item.before is None
        or field_values(item.before, fields) != field_values(item.after, fields)
    ]
    if not updates:
        return
    result = context.crm.write_fields(updates)
    for crm_id, message in result.rejected.items():
        logger.error(
            "CRM refused field update",
            extra={"crm_id": crm_id, "error": message, "crm": context.crm.name},
        )


def _last_fired(redis: Redis, account_id: str) -> dict[str, date]:
    raw = redis.hgetall(keys.playbook_last_fired(account_id))
    return {keys.text(name): date.fromisoformat(keys.text(day)) for name, day in raw.items()}


def run_action(context: Context, action: CreateTask, today: date) -> str | None:
    """Create the task once: claim its idempotency key, create it, remember the CRM id."""
    redis, key = context.redis, keys.action_done(action.idempotency_key)
    if not redis.set(key, _PENDING, nx=True, ex=ACTION_CLAIM_SECONDS):
        held = redis.get(key)
        if held == _PENDING.encode():
            msg = "another worker is creating this task; trying again after its claim expires"
            raise CrmRetriableError(
                context.crm.name, "create_task", msg, retry_after_seconds=ACTION_CLAIM_SECONDS
            )
        return keys.text(held) if held else None
    try:
        crm_id = _create_task(context, action)
    except CrmFatalError:
        redis.delete(key)
        logger.exception(
            "task not created", extra={"account_id": action.account_id, "playbook": action.playbook}
        )
        return None
    except Exception:
        redis.delete(key)
        raise
    redis.set(key, crm_id, ex=ACTION_MEMORY_SECONDS)
    redis.hset(keys.playbook_last_fired(action.account_id), action.playbook, today.isoformat())
    logger.info(
        "task created",
        extra={
            "account_id": action.account_id,
            "crm_id": crm_id,
            "playbook": action.playbook,
            "crm": context.crm.name,
        },
    )
    return crm_id


def _create_task(context: Context, action: CreateTask) -> str:
    contact = context.crm.find_contact(action.contact_email) if action.contact_email else None
    if action.owner_id is None:
        logger.warning(
            "task has no owner: set owners.fallback_owner",
            extra={"account_id": action.account_id, "playbook": action.playbook},
        )
    return context.crm.create_task(
        TaskRequest(
            subject=action.subject,
            body=action.body,
            due_date=action.due_date,
            priority=action.priority,
            task_type=action.task_type,
            owner_id=action.owner_id,
            account_crm_id=action.account_crm_id,
            contact_crm_id=contact.crm_id if contact else None,
        )
    )


def _record_unmatched(redis: Redis, kind: str, reference: str, signal_id: str) -> None:
    """Keep what the CRM could not place, for an admin to list; never drop it silently."""
    entry = {
        "kind": kind,
        "reference": reference,
        "signal_id": signal_id,
        "at": datetime.now(UTC).isoformat(),
    }
    pipe = redis.pipeline()
    pipe.lpush(keys.unmatched(), json.dumps(entry))
    pipe.ltrim(keys.unmatched(), 0, UNMATCHED_KEEP - 1)
    pipe.execute()
    logger.warning("no CRM record for signal", extra={"kind": kind, "signal_id": signal_id})
