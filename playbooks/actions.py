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
    contact_email: str
    fallback: CreateTask


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


Action = CreateTask | CreateNote | EnrollInSequence | NotifyOwner
