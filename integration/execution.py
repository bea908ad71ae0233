"""Runs a planned action against the CRM exactly once, however often it is planned.

A claim in Redis guards each idempotency key:
- absent: claim it (`pending:<time>`), create the task, store the CRM id;
- `pending:<time>` younger than CLAIM_LIVE_SECONDS: another worker is on it, try again later;
- `pending:` older than that (the worker died) or `unknown` (the CRM call failed in a way that
  may have saved the task): take it over, look for the task in the CRM first, create only if absent;
- anything else is the CRM id: done already.
"""

from __future__ import annotations

import logging
from datetime import date, datetime

from adapters.protocol import TaskRequest
from integration import keys
from integration.bootstrap import Context
from integration.errors import CrmFatalError, CrmRetriableError
from playbooks.actions import CreateTask

logger = logging.getLogger(__name__)

CLAIM_LIVE_SECONDS = 120
CLAIM_KEEP_SECONDS = 7 * 24 * 3600
DONE_KEEP_SECONDS = 400 * 24 * 3600
_PENDING = "pending:"
_UNKNOWN = "unknown"
_TAKE_OVER = """
if redis.call('GET', KEYS[1]) == ARGV[1] then
  redis.call('SET', KEYS[1], ARGV[2], 'EX', ARGV[3])
  return 1
end
return 0
"""


def run_action(context: Context, action: CreateTask, now: datetime) -> str:
    """Create the task once and return its CRM id; raise CrmRetriableError to be tried later."""
    redis, key = context.redis, keys.action_done(action.idempotency_key)
    mine = f"{_PENDING}{now.timestamp()}"
    look_first = False
    if not redis.set(key, mine, nx=True, ex=CLAIM_KEEP_SECONDS):
        held = keys.text(redis.get(key) or b"")
        if held and not held.startswith((_PENDING, _UNKNOWN)):
            return held
        if (
            held.startswith(_PENDING)
            and now.timestamp() - float(held[len(_PENDING) :]) < CLAIM_LIVE_SECONDS
        ):
            msg = "another worker is creating this task; trying again after its claim expires"
            raise CrmRetriableError(
                context.crm.name, "create_task", msg, retry_after_seconds=CLAIM_LIVE_SECONDS
            )
        if not redis.eval(_TAKE_OVER, 1, key, held, mine, CLAIM_KEEP_SECONDS):
            msg = "another worker took this task over; trying again later"
            raise CrmRetriableError(context.crm.name, "create_task", msg)
        look_first = True
    try:
        found = context.crm.find_task(action.idempotency_key) if look_first else None
        crm_id = found or _create_task(context, action)
    except CrmFatalError:
        redis.delete(key)  # the CRM refused the request, so nothing was created
        raise
    except Exception:
        redis.set(key, _UNKNOWN, ex=CLAIM_KEEP_SECONDS)
        raise
    redis.set(key, crm_id, ex=DONE_KEEP_SECONDS)
    redis.hset(keys.playbook_last_fired(action.account_id), action.playbook, now.date().isoformat())
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


def last_fired(context: Context, account_id: str) -> dict[str, date]:
    """When each playbook last created work for the account (for cooldowns)."""
    raw = context.redis.hgetall(keys.playbook_last_fired(account_id))
    return {keys.text(name): date.fromisoformat(keys.text(day)) for name, day in raw.items()}


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
            idempotency_key=action.idempotency_key,
        )
    )
