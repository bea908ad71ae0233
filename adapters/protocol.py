"""The one interface every CRM sits behind, and the plain values that cross it.

Playbooks and jobs speak only this; HubSpot, Salesforce and the sandbox each implement it in their
own package, translating their SDK's errors into integration.errors.CrmError subclasses.
"""

from __future__ import annotations

import hashlib
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, datetime
from typing import Literal, Protocol

FieldValue = str | int | float | bool | None
# The records `object_url` links to.
RecordKind = Literal["task", "note", "account"]


@dataclass(frozen=True, slots=True)
class CrmAccount:
    """A HubSpot company or Salesforce Account, as much of it as playbooks need."""

    crm_id: str
    name: str
    owner_id: str | None
    product_account_id: str | None = None
    domain: str | None = None
    # Values of the fields config.account_facts maps (renewal_date, segment, plan), as the CRM
    # holds them.
    facts: Mapping[str, str] = field(default_factory=dict)


def account_facts(record: Mapping[str, object], fields: Mapping[str, str]) -> dict[str, str]:
    """The mapped fact fields a CRM record holds a value for (empty and null are no value)."""
    return {
        name: str(record[field])
        for name, field in fields.items()
        if record.get(field) not in (None, "")
    }


def is_champion(value: str, champion_values: Sequence[str]) -> bool:
    """Whether a multi-select buying-role value (HubSpot and Salesforce both join picks with
    ';') holds one of the configured champion values, case aside."""
    wanted = {choice.strip().lower() for choice in champion_values}
    return any(pick.strip().lower() in wanted for pick in value.split(";"))


def task_key(idempotency_key: str) -> str:
    """What we store on a CRM task to find it again: a hash, because our keys may hold a
    person's email."""
    return hashlib.sha256(idempotency_key.encode()).hexdigest()[:40]


@dataclass(frozen=True, slots=True)
class CrmContact:
    crm_id: str
    email: str
    name: str
    account_crm_id: str | None = None
    title: str | None = None
    is_champion: bool = False  # from the CRM's buying-role field, as the config maps it
    # The account's main person: Salesforce's primary contact role (AccountContactRole
    # IsPrimary), HubSpot's "Primary contact" association label. Set by account_contacts.
    is_primary: bool = False


@dataclass(frozen=True, slots=True)
class CrmUser:
    """A person tasks can be assigned to: a HubSpot owner or a Salesforce User."""

    crm_id: str
    name: str
    email: str | None
    manager_id: str | None  # Salesforce User.ManagerId; HubSpot owners have none (None)


@dataclass(frozen=True, slots=True)
class BatchOutcome:
    """What became of one record of a batch create; one per request, in request order."""

    crm_id: str | None  # set when created
    error: str | None = None  # the CRM's message when refused
    # A 429, 5xx or timeout: the record may be tried again, but whether the CRM saved it is
    # unknown, so look it up by its key (find_task) before creating it again...
    retriable: bool = False
    # ...unless the CRM surely did nothing with it (a rate limit: CrmRetriableError.nothing_done).
    unsent: bool = False


@dataclass(frozen=True, slots=True)
class FieldUpdate:
    """Values to write on one account; keys are CRM field names from the config's mapping."""

    crm_id: str
    values: Mapping[str, FieldValue]


@dataclass(frozen=True, slots=True)
class WriteResult:
    written: tuple[str, ...] = ()
    rejected: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True, slots=True)
class TaskRequest:
    """A native CRM task for an owner, tied to the account and, for people signals, the contact."""

    subject: str
    body: str
    due_date: date
    priority: str
    task_type: str
    owner_id: str | None
    account_crm_id: str
    contact_crm_id: str | None = None
    # Stored on the task where the CRM allows, so an attempt whose outcome is unknown (a timeout
    # after the CRM saved it) can be found instead of created twice.
    idempotency_key: str = ""


@dataclass(frozen=True, slots=True)
class NoteRequest:
    """A note on the account's timeline (and the contact's), for the record of what happened."""

    body: str
    timestamp: datetime
    account_crm_id: str
    contact_crm_id: str | None = None
    owner_id: str | None = None


@dataclass(frozen=True, slots=True)
class SequenceEnrollment:
    """Enroll a contact in a HubSpot sequence (or Salesforce cadence), sent as the owner."""

    contact_crm_id: str
    sequence_id: str
    owner_id: str


@dataclass(frozen=True, slots=True)
class OwnerNotification:
    """An alert to the account owner in the CRM itself (Salesforce custom notification)."""

    owner_id: str
    title: str
    body: str
    account_crm_id: str


class CrmAdapter(Protocol):
    """What the service needs from a CRM. Batch methods take many records per call."""

    name: str

    def find_accounts(self, product_account_ids: Sequence[str]) -> dict[str, CrmAccount]:
        """Map product account ids to CRM accounts; ids the CRM lacks are left out."""
        ...

    def find_account_by_domain(self, domain: str) -> CrmAccount | None: ...

    def find_contact(self, email: str) -> CrmContact | None: ...

    def account_by_id(self, crm_id: str) -> CrmAccount | None: ...

    def contact_by_id(self, crm_id: str) -> CrmContact | None:
        """The contact with its title, champion flag and primary account."""
        ...

    def reassign_task(self, task_crm_id: str, owner_id: str) -> None: ...

    def write_fields(self, updates: Sequence[FieldUpdate]) -> WriteResult: ...

    def create_task(self, task: TaskRequest) -> str:
        """Create the task and return its CRM id."""
        ...

    def find_task(self, idempotency_key: str) -> str | None:
        """The CRM id of a task created earlier with this key, if the CRM has one."""
        ...

    def create_note(self, note: NoteRequest) -> str: ...

    def create_tasks(self, tasks: Sequence[TaskRequest]) -> list[BatchOutcome]:
        """Create many tasks with the CRM's batch call (HubSpot 100, Salesforce 200 a call);
        one outcome per task, in order. Each task keeps its idempotency key, as create_task."""
        ...

    def create_notes(self, notes: Sequence[NoteRequest]) -> list[BatchOutcome]:
        """Create many notes with the CRM's batch call; one outcome per note, in order."""
        ...

    def complete_task(self, task_crm_id: str) -> None:
        """Mark the task done; a task the CRM no longer has is left alone."""
        ...

    def user(self, user_id: str) -> CrmUser | None:
        """The owner or user with this id, with their manager where the CRM records one."""
        ...

    def account_contacts(self, account_crm_id: str) -> list[CrmContact]:
        """The account's contacts, each with is_champion and is_primary."""
        ...

    def record_url(self, account_crm_id: str) -> str | None:
        """A link to the account a rep can click (Slack, email); None when it cannot be made."""
        ...

    def object_url(
        self, kind: RecordKind, crm_id: str, account_crm_id: str | None = None
    ) -> str | None:
        """A link to a record we made or wrote (`integration history`): a task, a note, or
        the account itself. Where the CRM has no page of its own for the record (HubSpot's
        tasks and notes), the account's page, where it shows on the timeline
        (`account_crm_id`); None when no link can be made."""
        ...

    def notify_owner(self, notification: OwnerNotification) -> str:
        """Send it and return an id; CrmFeatureUnavailableError if the CRM cannot."""
        ...

    def enroll_in_sequence(self, enrollment: SequenceEnrollment) -> str:
        """Enroll and return the enrollment id; CrmFeatureUnavailableError if the CRM cannot."""
        ...
