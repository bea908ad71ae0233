"""The audit-trail entries a playbook step leaves (integration/store/history.py): the step, each
action with the CRM record it made and a link to it, and the run's end. Built here, recorded by
the caller in one round trip per batch of steps (playbooks/waterfall.py run_steps).
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from datetime import datetime

from adapters.protocol import RecordKind
from integration.store.history import Event, event
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
from playbooks.execution import HELD, ExecutionContext
from playbooks.planning import StepPlan
from playbooks.runs import Run

ACTION_KINDS: dict[type, str] = {
    CreateTask: "task",
    CreateNote: "note",
    UpdateField: "field",
    NotifyOwner: "notify",
    SendSlack: "slack",
    SendEmail: "email",
    EnrollInSequence: "sequence",
}
# What each kind of action's link opens: its own record, or the account it wrote to. Slack
# and email are not in the CRM: no link.
LINKED: dict[str, RecordKind] = {
    "task": "task",
    "note": "note",
    "field": "account",
    "notify": "account",
    "sequence": "account",
}
SUBJECT_CHARS = 120


def step_event(run: Run, step: str, outcome: str, now: datetime) -> Event:
    return event(
        run.account_id,
        "step",
        now,
        playbook=run.playbook,
        run_id=run.run_id,
        step=step,
        outcome=outcome,
    )


def settled_events(
    context: ExecutionContext,
    run: Run,
    plan: StepPlan,
    done: Mapping[str, str],
    now: datetime,
) -> list[Event]:
    """A step that ran or was skipped, then each of its actions as it went."""
    events = [step_event(run, plan.step.name, plan.skipped or "ran", now)]
    events += [
        action_event(context, action, done[action.idempotency_key], now)
        for action in plan.actions
        if action.idempotency_key in done
    ]
    return events


def action_event(
    context: ExecutionContext, action: Action, result: str, now: datetime, released: bool = False
) -> Event:
    """One action: what it was, the CRM record it made (none while a cap holds it) and a link
    to that record (CrmAdapter.object_url)."""
    kind = ACTION_KINDS[type(action)]
    held = result == HELD
    crm_id = None if held else result
    linked = LINKED.get(kind)
    url = None
    if crm_id is not None and linked is not None:
        record = action.account_crm_id if linked == "account" else crm_id
        url = context.crm.object_url(linked, record, action.account_crm_id)
    fields = {
        "playbook": action.playbook,
        "run_id": action.run_id,
        "step": action.step,
        "action": kind,
        "crm_id": crm_id,
        "url": url,
        "held": held,
        "subject": subject(action),
    }
    if released:
        fields["released"] = True
    return event(action.account_id, "action", now, **fields)


def subject(action: Action) -> str:
    """What the action said, in a line."""
    if isinstance(action, CreateTask | SendEmail):
        text = action.subject
    elif isinstance(action, CreateNote):
        text = action.body
    elif isinstance(action, UpdateField):
        text = f"{action.crm_field} = {action.value}"
    elif isinstance(action, NotifyOwner):
        text = action.title
    elif isinstance(action, SendSlack):
        text = action.text
    else:
        text = f"sequence {action.sequence_id}"
    first = text.strip().splitlines()[0] if text.strip() else ""
    return first[:SUBJECT_CHARS]


def ended_event(run: Run, at: datetime, why: str) -> Event:
    """run_ended: how the run ended (cleared runs are recorded by playbooks/starts.py)."""
    return event(
        run.account_id,
        "run_ended",
        at,
        playbook=run.playbook,
        run_id=run.run_id,
        status=run.status.value,
        why=why,
        control=run.control,
    )


def made_tasks(trail: Sequence[Event]) -> list[str]:
    """The CRM ids of the tasks these entries say were made."""
    return [
        str(item.fields["crm_id"])
        for item in trail
        if item.kind == "action" and item.fields.get("action") == "task" and item.fields["crm_id"]
    ]
