"""Our values as Salesforce records, and Salesforce's answers as ours."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any

from adapters.protocol import (
    BatchOutcome,
    CrmContact,
    CrmUser,
    NoteRequest,
    TaskRequest,
    is_champion,
    task_key,
)
from adapters.salesforce.errors import TRANSIENT_CODES, first_error

TASK_PRIORITIES = {"low": "Low", "medium": "Normal", "high": "High"}
TASK_TYPES = {"call": "Call", "email": "Email", "todo": "Other"}
SUBJECT_MAX, DESCRIPTION_MAX = 255, 32_000
NOTE_TITLE_MAX = 80
# reference/salesforce.md 5: the standard closed value of Task.Status.
COMPLETED = "Completed"


def task_record(task: TaskRequest, key_field: str) -> dict[str, Any]:
    record: dict[str, Any] = {
        "Subject": task.subject[:SUBJECT_MAX],
        "Description": task.body[:DESCRIPTION_MAX],
        "ActivityDate": task.due_date.isoformat(),
        "Priority": TASK_PRIORITIES.get(task.priority, "Normal"),
        "Status": "Not Started",
        "Type": TASK_TYPES.get(task.task_type, "Other"),
        "WhatId": task.account_crm_id,
    }
    if task.owner_id:
        record["OwnerId"] = task.owner_id
    if task.contact_crm_id:
        record["WhoId"] = task.contact_crm_id
    if task.idempotency_key:
        record[key_field] = task_key(task.idempotency_key)
    return record


def note_record(note: NoteRequest) -> dict[str, Any]:
    record: dict[str, Any] = {
        "ParentId": note.account_crm_id,
        # The first line that says something (Salesforce refuses an empty Title).
        "Title": next((line.strip() for line in note.body.splitlines() if line.strip()), "Note")[
            :NOTE_TITLE_MAX
        ],
        "Body": note.body[:DESCRIPTION_MAX],
    }
    if note.owner_id:
        record["OwnerId"] = note.owner_id
    return record


def collection_body(sobject: str, records: Sequence[Mapping[str, Any]]) -> dict[str, Any]:
    """An sObject Collections create: allOrNone false, so each record stands alone."""
    return {
        "allOrNone": False,
        "records": [{"attributes": {"type": sobject}, **record} for record in records],
    }


def save_outcome(result: Mapping[str, Any] | None) -> tuple[BatchOutcome, bool]:
    """One SaveResult as an outcome, and whether its refusal is transient (a locked row), so
    the record, which was not saved, may be sent again."""
    if result is None:
        return BatchOutcome(None, "Salesforce answered no result for this record", True), False
    if result.get("success"):
        return BatchOutcome(str(result["id"])), False
    code, message = first_error(result.get("errors"))
    transient = code in TRANSIENT_CODES
    return BatchOutcome(None, f"{code}: {message}", retriable=transient), transient


def contact(
    record: Mapping[str, Any],
    champion_field: str | None,
    champion_values: Sequence[str],
    primary: bool = False,
) -> CrmContact:
    champion = bool(champion_field) and is_champion(
        str(record.get(champion_field or "") or ""), champion_values
    )
    return CrmContact(
        record["Id"],
        record.get("Email") or "",
        record.get("Name") or "",
        record.get("AccountId"),
        record.get("Title"),
        champion,
        primary,
    )


def user(record: Mapping[str, Any]) -> CrmUser:
    return CrmUser(
        str(record["Id"]),
        record.get("Name") or str(record["Id"]),
        record.get("Email") or None,
        record.get("ManagerId") or None,
    )
