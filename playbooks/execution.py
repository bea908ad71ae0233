"""Runs planned actions (tasks, notes, sequence enrollments, field updates, alerts) against the
CRM once each; Slack and email go through playbooks/alerts.py.

A claim in Redis guards each idempotency key:
- absent: claim it (`pending:<time>`), create the task, store the CRM id;
- `pending:<time>` younger than CLAIM_LIVE_SECONDS: another worker is on it, try again later;
- `pending:` older than that (the worker died) or `unknown` (the CRM call failed in a way that
  may have saved the task): take it over, look for the task in the CRM first, create only if absent;
- `unsent` (refused, or rate-limited before the CRM did anything): take it over and send it,
  without looking for it and without counting it against the caps again;
- anything else is the CRM id: done already.

Many actions at once go through playbooks/batches.py: tasks and notes in the CRM's batch calls.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import asdict, replace
from datetime import date, datetime
from typing import Any

from adapters.protocol import (
    FieldUpdate,
    NoteRequest,
    OwnerNotification,
    SequenceEnrollment,
    TaskRequest,
)
from integration.errors import (
    CrmFatalError,
    CrmFeatureUnavailableError,
    CrmRetriableError,
)
from integration.store import caps, keys
from integration.store.metrics import count
from playbooks.actions import (
    Action,
    CreateNote,
    CreateTask,
    EnrollInSequence,
    NotifyOwner,
    SendEmail,
    SendSlack,
    UpdateField,
)
from playbooks.alerts import send_alert
from playbooks.edge import ExecutionContext, user

logger = logging.getLogger(__name__)

CLAIM_LIVE_SECONDS = 120
CLAIM_KEEP_SECONDS = 7 * 24 * 3600
DONE_KEEP_SECONDS = 400 * 24 * 3600
CONTACT_CACHE_SECONDS = 60
HELD = "held"
PENDING = "pending:"
UNKNOWN = "unknown"
# Claimed and counted against the caps, but surely not created (refused, or rate-limited before
# the CRM did anything): the next try sends it without counting it again or looking for it.
UNSENT = "unsent"


TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def run_action(context: ExecutionContext, action: Action, now: datetime) -> str:
    """Run the action once and return the CRM id; raise CrmRetriableError to be tried later."""
    redis, key = context.redis, keys.action_done(action.idempotency_key)
    mine = f"{PENDING}{now.timestamp()}"
    look_first = False
    if not redis.set(key, mine, nx=True, ex=CLAIM_KEEP_SECONDS):
        held = keys.text(redis.get(key) or b"")
        if held and not held.startswith((PENDING, UNKNOWN, UNSENT)):
            return held
        claimed_at = float(held[len(PENDING) :]) if held.startswith(PENDING) else 0.0
        if now.timestamp() - claimed_at < CLAIM_LIVE_SECONDS:
            msg = "another worker is running this action; trying again after its claim expires"
            raise CrmRetriableError(
                context.crm.name, "run_action", msg, retry_after_seconds=CLAIM_LIVE_SECONDS
            )
        if not redis.eval(TAKE_OVER, 1, key, held, mine, CLAIM_KEEP_SECONDS):
            msg = "another worker took this action over; trying again later"
            raise CrmRetriableError(context.crm.name, "run_action", msg)
        look_first = held != UNSENT
    try:
        crm_id = _perform(context, action, now, look_first)
    except CrmFatalError:
        redis.set(key, UNSENT, ex=CLAIM_KEEP_SECONDS)  # the CRM refused it: nothing created
        raise
    except CrmRetriableError as exc:
        # Rate-limited, nothing created, unless an earlier try's outcome is still unknown.
        unsent = exc.nothing_done and not look_first
        redis.set(key, UNSENT if unsent else UNKNOWN, ex=CLAIM_KEEP_SECONDS)
        raise
    except Exception:
        redis.set(key, UNKNOWN, ex=CLAIM_KEEP_SECONDS)
        raise
    redis.set(key, crm_id, ex=DONE_KEEP_SECONDS)
    record_done(context, action, crm_id, now)
    return crm_id


def _perform(context: ExecutionContext, action: Action, now: datetime, look_first: bool) -> str:
    if isinstance(action, CreateTask):
        found = context.crm.find_task(action.idempotency_key) if look_first else None
        task_id = found or _create_task(context, action)
        remember_task(context, action, task_id, now)
        return task_id
    if isinstance(action, NotifyOwner):
        return _notify(context, action, now)
    if isinstance(action, CreateNote):
        return context.crm.create_note(note_request(context, action, now))
    if isinstance(action, UpdateField):
        return _update_field(context, action)
    if isinstance(action, SendSlack | SendEmail):
        return send_alert(context, action)
    return _enroll(context, action, now)


def note_request(context: ExecutionContext, action: CreateNote, now: datetime) -> NoteRequest:
    return NoteRequest(
        action.body,
        now,
        action.account_crm_id,
        contact_id(context, action.contact_email),
        action.owner_id,
    )


def task_request(context: ExecutionContext, action: CreateTask) -> TaskRequest:
    if action.owner_id is None:
        logger.warning(
            "task has no owner: set owners.fallback_owner",
            extra={"account_id": action.account_id, "playbook": action.playbook},
        )
    return TaskRequest(
        subject=action.subject,
        body=action.body,
        due_date=action.due_date,
        priority=action.priority,
        task_type=action.task_type,
        owner_id=action.owner_id,
        account_crm_id=action.account_crm_id,
        contact_crm_id=contact_id(context, action.contact_email),
        idempotency_key=action.idempotency_key,
    )


def _update_field(context: ExecutionContext, action: UpdateField) -> str:
    """Write the value to the CRM field the config maps the name to."""
    config = context.config
    mapped = {**config.account_facts.crm_fields(), **config.fields.model_dump()}
    crm_field = mapped.get(action.crm_field) or action.crm_field
    result = context.crm.write_fields(
        [FieldUpdate(action.account_crm_id, {crm_field: action.value})]
    )
    if action.account_crm_id in result.rejected:
        message = result.rejected[action.account_crm_id]
        raise CrmFatalError(context.crm.name, "write_fields", message)
    return f"{crm_field}={action.value}"[:200]


def remember_task(
    context: ExecutionContext, action: CreateTask, task_id: str, created: datetime | None = None
) -> None:
    """Keep our open tasks per account: a new owner takes them over, a completion is an outcome.
    The task's own record is written first, and apart: it and the account's set are in two
    slots of a Redis Cluster, and a completion must always find the account of a listed task.
    `created`: when it was made, for the time to its completion (tasks made in a batch get it
    from remember_created)."""
    key = keys.crm_task(context.crm.name, task_id)
    pipe = context.redis.pipeline(transaction=True)
    pipe.hset(
        key,
        mapping={
            "account_id": action.account_id,
            "playbook": action.playbook,
            "run_id": action.run_id,
            "step": action.step,
        },
    )
    if created is not None:
        pipe.hsetnx(key, "created_at", created.isoformat())
    pipe.expire(key, DONE_KEEP_SECONDS)
    pipe.execute()
    context.redis.sadd(keys.open_tasks(action.account_id), task_id)


def remember_created(context: ExecutionContext, task_ids: Sequence[str], now: datetime) -> None:
    """When these tasks were made (kept with each, unless it has a time already: a step tried
    again finds its task made before), in one round trip."""
    if not task_ids:
        return
    pipe = context.redis.pipeline(transaction=False)
    for task_id in task_ids:
        pipe.hsetnx(keys.crm_task(context.crm.name, task_id), "created_at", now.isoformat())
    pipe.execute()


def _notify(context: ExecutionContext, action: NotifyOwner, now: datetime) -> str:
    notification = OwnerNotification(
        action.owner_id, action.title, action.body, action.account_crm_id
    )
    try:
        return context.crm.notify_owner(notification)
    except CrmFeatureUnavailableError as exc:
        # A task from the same step already reaches them; else they get the alert as a task.
        logger.warning(
            "CRM alert not possible here; %s",
            "a task says it instead" if action.fallback else "the step's task stands in for it",
            extra={"account_id": action.account_id, "why": str(exc)},
        )
        if action.fallback is None:
            return f"unavailable: {exc}"
        if _first_try(context, action.fallback) and not within_caps(context, action.fallback, now):
            return HELD
        return run_action(context, action.fallback, now)


def contact_id(context: ExecutionContext, email: str | None) -> str | None:
    """The contact's CRM id, looked up once a minute: a reason's task, note and enrollment all
    name the same person, and each lookup is a CRM API call. Only found contacts are kept, so
    a contact created in the CRM meanwhile is found on the next action."""
    if not email:
        return None
    key = keys.crm_contact(context.crm.name, email)
    cached = context.redis.get(key)
    if cached:
        return keys.text(cached)
    contact = context.crm.find_contact(email)
    if contact is None:
        return None
    context.redis.set(key, contact.crm_id, ex=CONTACT_CACHE_SECONDS)
    return contact.crm_id


def _enroll(context: ExecutionContext, action: EnrollInSequence, now: datetime) -> str:
    """Enroll, or give the owner the fallback task saying which sequence to start by hand."""
    if action.contact_email is None:
        contact = _contact_in_role(context, action.account_crm_id, action.contact_role)
    else:
        contact = contact_id(context, action.contact_email)
    why = ""
    if contact is None:
        role = action.contact_role.replace("_", " ")
        why = f"no {role} for this account in the CRM"
    elif action.owner_id is None:
        why = "the account has no owner to send as"
    else:
        try:
            return context.crm.enroll_in_sequence(
                SequenceEnrollment(contact, action.sequence_id, action.owner_id)
            )
        except CrmFeatureUnavailableError as exc:
            why = str(exc)
    logger.warning(
        "sequence enrollment not possible; owner gets a task instead",
        extra={"account_id": action.account_id, "playbook": action.playbook, "why": why},
    )
    fallback = replace(
        action.fallback, body=f"{action.fallback.body}\nWhy it was not automatic: {why}"
    )
    if _first_try(context, fallback) and not within_caps(context, fallback, now):
        return HELD
    return run_action(context, fallback, now)


def _first_try(context: ExecutionContext, action: CreateTask) -> bool:
    """Not tried before (a retry was counted against the caps the first time)."""
    return not context.redis.exists(keys.action_done(action.idempotency_key))


def _contact_in_role(context: ExecutionContext, account_crm_id: str, role: str) -> str | None:
    """The account's champion or primary contact, as the CRM marks them."""
    contacts = context.crm.account_contacts(account_crm_id)
    wanted = [c for c in contacts if (c.is_champion if role == "champion" else c.is_primary)]
    return wanted[0].crm_id if wanted else None


def within_caps(context: ExecutionContext, action: CreateTask, now: datetime) -> bool:
    """Count the task against the caps, or hold it for a later working day."""
    limits = context.config.work.caps
    if caps.try_take(
        context.redis,
        action.owner_id,
        action.account_id,
        now.date(),
        limits.tasks_per_assignee_per_day,
        limits.tasks_per_account_per_week,
    ):
        return True
    task = asdict(action)
    task["due_date"] = action.due_date.isoformat()
    caps.hold(context.redis, action.idempotency_key, task, action.risk_score, now.date())
    count(context.redis, "tasks_held", {"playbook": action.playbook})
    logger.info(
        "task held: a cap is reached; it goes out on a later working day",
        extra={"account_id": action.account_id, "playbook": action.playbook},
    )
    return False


def held_task(raw: Mapping[str, Any]) -> CreateTask:
    """A held task as it was planned (from caps.held)."""
    return CreateTask(**{**raw, "due_date": date.fromisoformat(raw["due_date"])})


def record_done(context: ExecutionContext, action: Action, crm_id: str, now: datetime) -> None:
    count(context.redis, "crm_actions", {"crm": context.crm.name, "action": type(action).__name__})
    logger.info(
        "%s done",
        type(action).__name__,
        extra={"account_id": action.account_id, "crm_id": crm_id, "playbook": action.playbook},
    )


def _create_task(context: ExecutionContext, action: CreateTask) -> str:
    return context.crm.create_task(task_request(context, action))


__all__ = ["HELD", "ExecutionContext", "held_task", "run_action", "user"]
