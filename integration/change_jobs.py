"""The RQ job for changes the CRM reports (integration/crm_changes.py), one handler per kind."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable
from datetime import UTC, datetime

from integration import keys
from integration.bootstrap import Context
from integration.crm_changes import ChangeKind, CrmChange
from integration.jobs import crm_job, current_context, record_people_signal
from integration.signals import ChangeType, JobChanged
from integration.unmatched import record_unmatched

logger = logging.getLogger(__name__)

OUTCOMES_KEEP = 200
ORDERING_KEEP_SECONDS = 30 * 24 * 3600
# Set the newest time seen for a thing; refuse (0) a change older than what was already applied.
_NEWER_ONLY = """
local seen = tonumber(redis.call('GET', KEYS[1]) or '-1')
if tonumber(ARGV[1]) < seen then return 0 end
redis.call('SET', KEYS[1], ARGV[1], 'EX', ARGV[2])
return 1
"""


@crm_job
def process_crm_change(change_json: dict[str, object]) -> str:
    context = current_context()
    change = CrmChange.from_json(change_json)
    if not context.redis.eval(
        _NEWER_ONLY,
        1,
        keys.change_seen(change.ordering_key),
        change.occurred_at.timestamp(),
        ORDERING_KEEP_SECONDS,
    ):
        logger.info(
            "older than a change already applied; ignored",
            extra={"kind": change.kind.value, "crm": change.crm},
        )
        return "out_of_order"
    return HANDLERS[change.kind](context, change)


def _contact_left_account(context: Context, change: CrmChange) -> str:
    account = context.crm.account_by_id(change.related_id or "")
    contact = context.crm.contact_by_id(change.subject_id)
    if account is None or not account.product_account_id or contact is None:
        record_unmatched(
            context.redis,
            "crm_change",
            f"{change.crm} company {change.related_id}",
            change.delivery_key,
            _now(),
        )
        return "unmatched"
    signal = _people_signal(
        change,
        contact.email,
        contact.name,
        ChangeType.LEFT_COMPANY,
        account.product_account_id,
        account.name,
        contact.title,
        contact.is_champion,
    )
    record_people_signal(context, signal, account.product_account_id)
    return account.product_account_id


def _contact_title_changed(context: Context, change: CrmChange) -> str:
    contact = context.crm.contact_by_id(change.subject_id)
    account = (
        context.crm.account_by_id(contact.account_crm_id)
        if contact and contact.account_crm_id
        else None
    )
    if contact is None or account is None or not account.product_account_id:
        return "no_account"
    signal = _people_signal(
        change,
        contact.email,
        contact.name,
        ChangeType.PROMOTION,
        account.product_account_id,
        account.name,
        None,
        contact.is_champion,
        new_title=change.value,
    )
    record_people_signal(context, signal, account.product_account_id)
    return account.product_account_id


def _account_owner_changed(context: Context, change: CrmChange) -> str:
    account = context.crm.account_by_id(change.subject_id)
    if account is None or not account.product_account_id or not change.value:
        return "no_account"
    task_ids = sorted(
        keys.text(t) for t in context.redis.smembers(keys.open_tasks(account.product_account_id))
    )
    for task_id in task_ids:
        context.crm.reassign_task(task_id, change.value)
    logger.info(
        "open tasks moved to the new owner",
        extra={"account_id": account.product_account_id, "tasks": len(task_ids)},
    )
    return f"reassigned {len(task_ids)}"


def _task_completed(context: Context, change: CrmChange) -> str:
    ours = context.redis.hgetall(keys.crm_task(change.crm, change.subject_id))
    if not ours:
        return "not_ours"
    account_id, playbook = keys.text(ours[b"account_id"]), keys.text(ours[b"playbook"])
    outcome = {
        "playbook": playbook,
        "task_id": change.subject_id,
        "completed_at": change.occurred_at.isoformat(),
    }
    pipe = context.redis.pipeline()
    pipe.srem(keys.open_tasks(account_id), change.subject_id)
    pipe.lpush(keys.outcomes(account_id), json.dumps(outcome))
    pipe.ltrim(keys.outcomes(account_id), 0, OUTCOMES_KEEP - 1)
    pipe.execute()
    logger.info("playbook task completed", extra={"account_id": account_id, "playbook": playbook})
    return "outcome_recorded"


HANDLERS: dict[ChangeKind, Callable[[Context, CrmChange], str]] = {
    ChangeKind.CONTACT_LEFT_ACCOUNT: _contact_left_account,
    ChangeKind.CONTACT_TITLE_CHANGED: _contact_title_changed,
    ChangeKind.ACCOUNT_OWNER_CHANGED: _account_owner_changed,
    ChangeKind.TASK_COMPLETED: _task_completed,
}


def _people_signal(
    change: CrmChange,
    email: str,
    name: str,
    kind: ChangeType,
    account_id: str,
    account_name: str,
    title: str | None,
    is_champion: bool,
    new_title: str | None = None,
) -> JobChanged:
    return JobChanged(
        event_id=change.delivery_key,
        source=change.crm,
        change_type=kind,
        detected_at=change.occurred_at,
        email=email.lower() or None,
        full_name=name,
        previous_company_name=account_name,
        previous_company_domain=None,
        previous_job_title=title,
        current_company_name=None,
        current_company_domain=None,
        current_job_title=new_title,
        relationship_type=None,
        is_champion=is_champion,
        previous_account_id=account_id,
    )


def _now() -> datetime:
    return datetime.now(UTC)
