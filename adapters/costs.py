"""What the CRM's API charges for our writes: the calls each adapter write path makes for N
records, so a dry run (`integration plan`) can price the next run before it happens.

Each CRM's model (adapters/<crm>/costs.py, picked by integration/jobs/dry_run.py) follows its
adapter call for call: batch sizes, which writes are batched, which need a lookup first, and
which the CRM cannot do at all (the run then creates a fallback task instead). Reads are not
modelled here: a dry run makes the run's reads itself and counts them.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from enum import StrEnum


class CallKind(StrEnum):
    """What a CRM API call does, as `integration plan` reports it."""

    FIELD_UPDATES = "field_updates"  # batch updates of the account fields we map
    TASK_CREATES = "task_creates"  # batch or single task creates
    NOTE_CREATES = "note_creates"
    TASK_UPDATES = "task_updates"  # completing a task when its flag clears
    ENROLLMENTS = "enrollments"  # sequence or cadence enrollments
    NOTIFICATIONS = "notifications"  # in-CRM owner notifications
    READS = "reads"  # lookups: accounts, contacts, owners, a task by its key


class WritePath(StrEnum):
    """The adapter methods that write (adapters/protocol.py)."""

    WRITE_FIELDS = "write_fields"
    CREATE_TASKS = "create_tasks"
    CREATE_TASK = "create_task"
    CREATE_NOTES = "create_notes"
    CREATE_NOTE = "create_note"
    COMPLETE_TASK = "complete_task"
    NOTIFY_OWNER = "notify_owner"
    ENROLL = "enroll_in_sequence"
    # The reads a write path makes first, when its cache does not hold the answer.
    SENDER_LOOKUP = "sender_lookup"  # HubSpot: the owner to enroll as
    NOTIFICATION_TYPE_LOOKUP = "notification_type_lookup"  # Salesforce: the type's id


BATCHED = frozenset({WritePath.WRITE_FIELDS, WritePath.CREATE_TASKS, WritePath.CREATE_NOTES})
KINDS = {
    WritePath.WRITE_FIELDS: CallKind.FIELD_UPDATES,
    WritePath.CREATE_TASKS: CallKind.TASK_CREATES,
    WritePath.CREATE_TASK: CallKind.TASK_CREATES,
    WritePath.CREATE_NOTES: CallKind.NOTE_CREATES,
    WritePath.CREATE_NOTE: CallKind.NOTE_CREATES,
    WritePath.COMPLETE_TASK: CallKind.TASK_UPDATES,
    WritePath.NOTIFY_OWNER: CallKind.NOTIFICATIONS,
    WritePath.ENROLL: CallKind.ENROLLMENTS,
    WritePath.SENDER_LOOKUP: CallKind.READS,
    WritePath.NOTIFICATION_TYPE_LOOKUP: CallKind.READS,
}


@dataclass(frozen=True, slots=True)
class CostModel:
    """One CRM's prices. `batch_limit` None: a batch is one call whatever its size."""

    crm: str
    batch_limit: int | None
    # notify_owner reaches the CRM (HubSpot has no API for it: the run makes the fallback
    # task, or nothing when the step already gives the owner a task).
    notifies: bool
    # Write paths that need a lookup first, and the Redis key that caches its answer.
    sender_lookup: bool = False
    notification_type_lookup: bool = False
    # Whether the CRM has a daily API allocation at all (the sandbox has none).
    budgeted: bool = True

    def calls(self, path: WritePath, records: int) -> dict[CallKind, int]:
        """The API calls `path` makes for `records` records (0 records: none)."""
        if records <= 0:
            return {}
        skipped = {
            WritePath.NOTIFY_OWNER: not self.notifies,
            WritePath.SENDER_LOOKUP: not self.sender_lookup,
            WritePath.NOTIFICATION_TYPE_LOOKUP: not self.notification_type_lookup,
        }
        if path in BATCHED:
            calls = math.ceil(records / self.batch_limit) if self.batch_limit else 1
        else:
            calls = 0 if skipped.get(path, False) else records
        return {KINDS[path]: calls} if calls else {}


def local_costs(crm: str) -> CostModel:
    """A CRM that is a local file (the sandbox): one "call" per batch, no allocation."""
    return CostModel(crm, None, notifies=True, budgeted=False)
