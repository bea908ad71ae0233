"""Runs planned actions (tasks, notes, sequence enrollments) against the CRM once each.

A claim in Redis guards each idempotency key:
- absent: claim it (`pending:<time>`), create the task, store the CRM id;
- `pending:<time>` younger than CLAIM_LIVE_SECONDS: another worker is on it, try again later;
- `pending:` older than that (the worker died) or `unknown` (the CRM call failed in a way that
  may have saved the task): take it over, look for the task in the CRM first, create only if absent;
- anything else is the CRM id: done already.
"""

from __future__ import annotations

import logging
from collections.abc import Mapping
from dataclasses import replace
from datetime import date, datetime
from typing import Protocol

from redis import Redis

from adapters.protocol import (
    CrmAdapter,
    NoteRequest,
    OwnerNotification,
    SequenceEnrollment,
    TaskRequest,
)
from integration.errors import CrmFatalError, CrmFeatureUnavailableError, CrmRetriableError
from integration.store import keys
from integration.store.metrics import count
from playbooks.actions import Action, CreateNote, CreateTask, EnrollInSequence, NotifyOwner

logger = logging.getLogger(__name__)

CLAIM_LIVE_SECONDS = 120
CLAIM_KEEP_SECONDS = 7 * 24 * 3600
DONE_KEEP_SECONDS = 400 * 24 * 3600
CONTACT_CACHE_SECONDS = 60
_PENDING = "pending:"
_UNKNOWN = "unknown"


class ExecutionContext(Protocol):
    """What running an action needs: a Redis and a CRM (integration.jobs.context has both)."""

    @property
    def redis(self) -> Redis: ...

    @property
    def crm(self) -> CrmAdapter: ...


_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def run_action(context: ExecutionContext, action: Action, now: datetime) -> str:
    """Run the action once and return the CRM id; raise CrmRetriableError to be tried later."""
    redis, key = context.redis, keys.action_done(action.idempotency_key)
    mine = f"{_PENDING}{now.timestamp()}"
    look_first = False
    if not redis.set(key, mine, nx=True, ex=CLAIM_KEEP_SECONDS):
        held = keys.text(redis.get(key) or b"")
        if held and not held.startswith((_PENDING, _UNKNOWN)):
            return held
        claimed_at = float(held[len(_PENDING) :]) if held.startswith(_PENDING) else 0.0
        if now.timestamp() - claimed_at < CLAIM_LIVE_SECONDS:
            msg = "another worker is running this action; trying again after its claim expires"
            raise CrmRetriableError(
                context.crm.name, "run_action", msg, retry_after_seconds=CLAIM_LIVE_SECONDS
            )
        if not redis.eval(_TAKE_OVER, 1, key, held, mine, CLAIM_KEEP_SECONDS):
            msg = "another worker took this action over; trying again later"
            raise CrmRetriableError(context.crm.name, "run_action", msg)
        look_first = True
    try:
        crm_id = _perform(context, action, now, look_first)
    except CrmFatalError:
        redis.delete(key)  # the CRM refused the request, so nothing was created
        raise
    except Exception:
        redis.set(key, _UNKNOWN, ex=CLAIM_KEEP_SECONDS)
        raise
    redis.set(key, crm_id, ex=DONE_KEEP_SECONDS)
    count(redis, "crm_actions", {"crm": context.crm.name, "action": type(action).__name__})
    redis.hset(keys.playbook_last_fired(action.account_id), action.playbook, now.date().isoformat())
    logger.info(
        "%s done",
        type(action).__name__,
        extra={
            "account_id": action.account_id,
            "crm_id": crm_id,
            "playbook": action.playbook,
            "crm": context.crm.name,
        },
    )
    return crm_id


def last_fired(raw: Mapping[bytes, bytes]) -> dict[str, date]:
    """When each playbook last created work for the account (for cooldowns), from the HGETALL
    of keys.playbook_last_fired."""
    return {keys.text(name): date.fromisoformat(keys.text(day)) for name, day in raw.items()}


def _perform(context: ExecutionContext, action: Action, now: datetime, look_first: bool) -> str:
    if isinstance(action, CreateTask):
        found = context.crm.find_task(action.idempotency_key) if look_first else None
        task_id = found or _create_task(context, action)
        _remember_task(context, action, task_id)
        return task_id
    if isinstance(action, NotifyOwner):
        return _notify(context, action)
    if isinstance(action, CreateNote):
        return context.crm.create_note(
            NoteRequest(
                action.body,
                now,
                action.account_crm_id,
                _contact_id(context, action.contact_email),
                action.owner_id,
            )
        )
    return _enroll(context, action, now)


def _remember_task(context: ExecutionContext, action: CreateTask, task_id: str) -> None:
    """Keep our open tasks per account: a new owner takes them over, a completion is an outcome."""
    pipe = context.redis.pipeline()
    pipe.hset(
        keys.crm_task(context.crm.name, task_id),
        mapping={"account_id": action.account_id, "playbook": action.playbook},
    )
    pipe.expire(keys.crm_task(context.crm.name, task_id), DONE_KEEP_SECONDS)
    pipe.sadd(keys.open_tasks(action.account_id), task_id)
    pipe.execute()


def _notify(context: ExecutionContext, action: NotifyOwner) -> str:
    notification = OwnerNotification(
        action.owner_id, action.title, action.body, action.account_crm_id
    )
    try:
        return context.crm.notify_owner(notification)
    except CrmFeatureUnavailableError as exc:
        # The playbook's task already reaches the owner; a second task would only repeat it.
        logger.warning(
            "owner notification not possible; the task stands in for it",
            extra={"account_id": action.account_id, "why": str(exc)},
        )
        return f"unavailable: {exc}"


def _contact_id(context: ExecutionContext, email: str | None) -> str | None:
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
    contact_id = _contact_id(context, action.contact_email)
    why = ""
    if contact_id is None:
        why = "the contact is not in the CRM"
    elif action.owner_id is None:
        why = "the account has no owner to send as"
    else:
        try:
            return context.crm.enroll_in_sequence(
                SequenceEnrollment(contact_id, action.sequence_id, action.owner_id)
            )
        except CrmFeatureUnavailableError as exc:
            why = str(exc)
    logger.warning(
        "sequence enrollment not possible; owner gets a task instead",
        extra={"account_id": action.account_id, "playbook": action.playbook, "why": why},
    )
    fallback = action.fallback
    note = f"\nWhy it was not automatic: {why}"
    return run_action(context, replace(fallback, body=fallback.body + note), now)


def _create_task(context: ExecutionContext, action: CreateTask) -> str:
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
            contact_crm_id=_contact_id(context, action.contact_email),
            idempotency_key=action.idempotency_key,
        )
    )
