"""The RQ job for changes the CRM reports (signals/crm_changes.py), one handler per kind."""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping
from datetime import UTC, datetime
from typing import Any

from integration.jobs.context import Context
from integration.jobs.evaluate import crm_job, current_context, record_people_signal
from integration.jobs.trail import OUTCOMES_KEEP, outcome_json
from integration.signals.crm_changes import ChangeKind, CrmChange
from integration.signals.events import ChangeType, JobChanged
from integration.store import history, keys
from integration.store.history import Event
from integration.store.unmatched import record_unmatched
from playbooks.waterfall import task_completed

logger = logging.getLogger(__name__)

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
        _unmatched(context, change, f"company {change.related_id}")
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
        _unmatched(context, change, f"{change.kind.value} {change.subject_id}")
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
        _unmatched(context, change, f"{change.kind.value} {change.subject_id}")
        return "no_account"
    task_ids = sorted(
        keys.text(t) for t in context.redis.smembers(keys.open_tasks(account.product_account_id))
    )
    for task_id in task_ids:
        context.crm.reassign_task(task_id, change.value)
    summary = f"account owner changed to {change.value}: {len(task_ids)} open task(s) moved"
    history.record(
        context.redis,
        [_signal(account.product_account_id, change, summary)],
        context.config.history,
    )
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
    run_id = keys.text(ours.get(b"run_id", b""))
    completed = _completed(account_id, change, ours)
    # An outcome only when this closes one of our open tasks: not a task the playbook
    # completed itself (playbooks/exits.py takes it out of open_tasks first), nor the same
    # task completed again (reopened, or the completion sent under another event id).
    first = context.redis.eval(
        _CLOSE_TASK,
        2,
        keys.open_tasks(account_id),
        keys.outcomes(account_id),
        change.subject_id,
        json.dumps(outcome_json(completed)),
        OUTCOMES_KEEP,
    )
    said = f"task {change.subject_id} completed"
    trail = [_signal(account_id, change, said if first else f"{said} (already closed)")]
    history.record(context.redis, [*trail, completed] if first else trail, context.config.history)
    logger.info(
        "playbook task completed" if first else "playbook task already closed; no outcome",
        extra={"account_id": account_id, "playbook": playbook},
    )
    recorded = "outcome_recorded" if first else "already_closed"
    if not run_id:
        return recorded
    # Even when already closed: a retry after a worker died here still ends the run.
    ended = task_completed(context, account_id, run_id, context.playbooks, change.occurred_at)
    return f"{recorded}; {ended}"


# KEYS[1] the account's open tasks, KEYS[2] its outcomes. ARGV[1] the task, ARGV[2] the outcome
# (JSON), ARGV[3] how many outcomes are kept. The outcome is kept only when the task was open.
_CLOSE_TASK = """
if redis.call('SREM', KEYS[1], ARGV[1]) == 0 then return 0 end
redis.call('LPUSH', KEYS[2], ARGV[2])
redis.call('LTRIM', KEYS[2], 0, tonumber(ARGV[3]) - 1)
return 1
"""


def _signal(account_id: str, change: CrmChange, summary: str) -> Event:
    """A CRM webhook that mattered, for the trail: the CRM, its event, what it said."""
    return history.event(
        account_id,
        "signal",
        change.occurred_at,
        source=change.crm,
        delivery_id=change.delivery_key,
        summary=summary,
        change_type=change.kind.value,
    )


def _completed(account_id: str, change: CrmChange, ours: Mapping[Any, Any]) -> Event:
    """The task_completed outcome, with the seconds from its creation (playbooks/execution.py
    keeps the created time with the task; tasks made before it did have none)."""
    created_raw = ours.get(b"created_at")
    created = datetime.fromisoformat(keys.text(created_raw)) if created_raw else None
    seconds = max(0, round((change.occurred_at - created).total_seconds())) if created else None
    return history.event(
        account_id,
        "task_completed",
        change.occurred_at,
        playbook=keys.text(ours[b"playbook"]),
        run_id=keys.text(ours.get(b"run_id", b"")),
        step=keys.text(ours.get(b"step", b"")),
        task_id=change.subject_id,
        created_at=created.isoformat() if created else None,
        completed_at=change.occurred_at.isoformat(),
        seconds=seconds,
    )


HANDLERS: dict[ChangeKind, Callable[[Context, CrmChange], str]] = {
    ChangeKind.CONTACT_LEFT_ACCOUNT: _contact_left_account,
    ChangeKind.CONTACT_TITLE_CHANGED: _contact_title_changed,
    ChangeKind.ACCOUNT_OWNER_CHANGED: _account_owner_changed,
    ChangeKind.TASK_COMPLETED: _task_completed,
}


SNAPSHOT_KEEP_SECONDS = 400 * 24 * 3600


@crm_job
def process_record_snapshot(payload: dict[str, Any]) -> str:
    """A record's current values (a Salesforce outbound message): compare them with the last
    values seen for it, act on what changed, then remember them.

    Salesforce sends current values only, so a change is seen against the last values kept here,
    or, for the first message about a Contact, against the prior AccountId that the Flow sending it
    put in `outbound.prior_account_field` ($Record__Prior.AccountId). Values are read when
    Salesforce sends, so a late or repeated message carries current values and cannot undo a
    newer one.
    """
    context = current_context()
    crm, fields = str(payload["crm"]), dict(payload["fields"])
    key = keys.crm_snapshot(crm, fields["Id"])
    before = {keys.text(k): keys.text(v) for k, v in context.redis.hgetall(key).items()}
    prior_field = _prior_account_field(context)
    if not before.get("AccountId") and prior_field and fields.get(prior_field):
        before = {**before, "AccountId": fields[prior_field]}  # first message about the contact
    derive = SNAPSHOT_RULES.get(str(payload["sobject_type"]))
    changes = derive(crm, before, fields, str(payload["notification_id"])) if derive else []
    results = [HANDLERS[change.kind](context, change) for change in changes]
    pipe = context.redis.pipeline(transaction=True)  # one key; a cluster's default is none
    pipe.hset(key, mapping=fields)
    pipe.expire(key, SNAPSHOT_KEEP_SECONDS)
    pipe.execute()
    return "; ".join(results) or ("remembered" if not before else "no change we act on")


def _prior_account_field(context: Context) -> str | None:
    outbound = context.config.crm.salesforce.outbound
    return outbound.prior_account_field if outbound else None


def _changed(before: dict[str, str], after: dict[str, str], name: str) -> bool:
    """Known before, sent now, and different: a field the message omits has not changed."""
    return bool(before.get(name)) and name in after and after[name] != before[name]


def _change(
    crm: str,
    kind: ChangeKind,
    after: dict[str, str],
    notification_id: str,
    value: str | None = None,
    related: str | None = None,
) -> CrmChange:
    stamp = after.get("LastModifiedDate") or after.get("SystemModstamp")
    occurred = datetime.fromisoformat(stamp.replace("Z", "+00:00")) if stamp else _now()
    return CrmChange(
        crm=crm,
        kind=kind,
        subject_id=after["Id"],
        occurred_at=occurred,
        delivery_key=f"{notification_id}:{kind.value}",
        value=value,
        related_id=related,
    )


def _contact_snapshot(
    crm: str, before: dict[str, str], after: dict[str, str], notification_id: str
) -> list[CrmChange]:
    changes = []
    if _changed(before, after, "AccountId"):
        changes.append(
            _change(
                crm,
                ChangeKind.CONTACT_LEFT_ACCOUNT,
                after,
                notification_id,
                related=before["AccountId"],
            )
        )
    if _changed(before, after, "Title"):
        changes.append(
            _change(
                crm, ChangeKind.CONTACT_TITLE_CHANGED, after, notification_id, value=after["Title"]
            )
        )
    return changes


def _account_snapshot(
    crm: str, before: dict[str, str], after: dict[str, str], notification_id: str
) -> list[CrmChange]:
    if _changed(before, after, "OwnerId"):
        return [
            _change(
                crm,
                ChangeKind.ACCOUNT_OWNER_CHANGED,
                after,
                notification_id,
                value=after["OwnerId"],
            )
        ]
    return []


def _task_snapshot(
    crm: str, before: dict[str, str], after: dict[str, str], notification_id: str
) -> list[CrmChange]:
    if after.get("Status") == "Completed" and before.get("Status") != "Completed":
        return [_change(crm, ChangeKind.TASK_COMPLETED, after, notification_id)]
    return []


SNAPSHOT_RULES: dict[str, Callable[[str, dict[str, str], dict[str, str], str], list[CrmChange]]] = {
    "Contact": _contact_snapshot,
    "Account": _account_snapshot,
    "Task": _task_snapshot,
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


def _unmatched(context: Context, change: CrmChange, what: str) -> None:
    """List a change we could not tie to a product account, for `integration unmatched`."""
    record_unmatched(
        context.redis, "crm_change", f"{change.crm} {what}", change.delivery_key, _now()
    )


def _now() -> datetime:
    return datetime.now(UTC)
