"""Changes the CRM tells us about (HubSpot webhooks, Salesforce outbound messages), CRM-neutral.

The web edge maps each vendor event to a CrmChange of one of a few kinds; the job here acts on
it: a contact leaving an account or changing title is a people signal, an account's new owner
takes over our open tasks, and a completed task of ours records the playbook's outcome.
"""

from __future__ import annotations

import hashlib
from dataclasses import asdict, dataclass
from datetime import datetime
from enum import StrEnum
from typing import Any


class ChangeKind(StrEnum):
    CONTACT_LEFT_ACCOUNT = "contact_left_account"
    CONTACT_TITLE_CHANGED = "contact_title_changed"
    ACCOUNT_OWNER_CHANGED = "account_owner_changed"
    TASK_COMPLETED = "task_completed"


@dataclass(frozen=True, slots=True)
class CrmChange:
    """One fact from the CRM. `subject_id` is the changed record, `related_id` the other side."""

    crm: str
    kind: ChangeKind
    subject_id: str
    occurred_at: datetime
    delivery_key: str  # what identifies this event among re-deliveries
    value: str | None = None
    related_id: str | None = None

    @property
    def dedupe_id(self) -> str:
        return hashlib.sha256(f"{self.crm}\x00{self.delivery_key}".encode()).hexdigest()[:40]

    @property
    def ordering_key(self) -> str:
        """Changes to the same thing: only a newer one may overwrite an older one's effect."""
        return f"{self.crm}:{self.kind.value}:{self.subject_id}:{self.related_id or ''}"

    def to_json(self) -> dict[str, Any]:
        data = asdict(self)
        data["kind"] = self.kind.value
        data["occurred_at"] = self.occurred_at.isoformat()
        return data

    @classmethod
    def from_json(cls, data: dict[str, Any]) -> CrmChange:
        values = dict(data)
        values["kind"] = ChangeKind(values["kind"])
        values["occurred_at"] = datetime.fromisoformat(values["occurred_at"])
        return cls(**values)
