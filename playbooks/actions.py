"""Actions: orders the engine gives, each with the idempotency key that makes it happen once."""

from __future__ import annotations

from dataclasses import dataclass
from datetime import date


@dataclass(frozen=True, slots=True)
class CreateTask:
    """Create a native CRM task for the account owner (and tie it to the contact, if any)."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    subject: str
    body: str
    due_date: date
    priority: str
    task_type: str
    contact_email: str | None = None
    run_id: str = ""  # the playbook run and step it belongs to (to follow it up or cancel it)
    step: str = ""
    risk_score: int = 0  # held tasks (over a cap) are released highest risk first


@dataclass(frozen=True, slots=True)
class CreateNote:
    """Log what happened on the account's timeline (and the contact's)."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    body: str
    contact_email: str | None = None
    run_id: str = ""
    step: str = ""


@dataclass(frozen=True, slots=True)
class EnrollInSequence:
    """Enroll the signal's contact in a sequence (HubSpot) or cadence (Salesforce) as the owner.

    `fallback` is the task the owner gets instead when the CRM cannot enroll (no API access, no
    paid seat, contact unknown), so the play still happens by hand.
    """

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    sequence_id: str
    contact_email: str | None  # the signal's person; None: look up `contact_role` in the CRM
    fallback: CreateTask
    contact_role: str = "signal_person"
    run_id: str = ""
    step: str = ""


@dataclass(frozen=True, slots=True)
class NotifyOwner:
    """Alert the owner in the CRM (a Salesforce custom notification) about the account."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str
    title: str
    body: str
    run_id: str = ""
    step: str = ""
    # Where the CRM has no in-app alerts for apps (HubSpot), the recipient gets this task
    # instead; None when the same step already gives them a task.
    fallback: CreateTask | None = None


@dataclass(frozen=True, slots=True)
class UpdateField:
    """Write one value on the account (a field from the config's mappings)."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    crm_field: str
    value: str
    run_id: str = ""
    step: str = ""


@dataclass(frozen=True, slots=True)
class SendSlack:
    """A Slack message: to `channel`, or as a DM to the CRM user `owner_id` (found by email)."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    channel: str | None
    text: str
    run_id: str = ""
    step: str = ""


@dataclass(frozen=True, slots=True)
class SendEmail:
    """An email to `to`, or to the CRM user `owner_id`'s address."""

    idempotency_key: str
    playbook: str
    account_id: str
    account_crm_id: str
    owner_id: str | None
    to: str | None
    subject: str
    body: str
    run_id: str = ""
    step: str = ""


Action = (
    CreateTask | CreateNote | EnrollInSequence | NotifyOwner | UpdateField | SendSlack | SendEmail
)
