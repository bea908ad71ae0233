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


Action = CreateTask
