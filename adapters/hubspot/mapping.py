"""How our values become HubSpot properties, and HubSpot records become ours."""

from __future__ import annotations

import html
from datetime import date, datetime, time
from typing import Any

from adapters.protocol import CrmAccount, FieldValue, NoteRequest, TaskRequest, task_key

# hubspot.crm.association_type.AssociationType in hubspot-api-client 12.0.0 (reference/hubspot.md
# 2.5): the id is the one for the direction from the object being created.
TASK_TO_CONTACT = 204
TASK_TO_COMPANY = 192
NOTE_TO_CONTACT = 202
NOTE_TO_COMPANY = 190
# https://developers.hubspot.com/docs/api-reference/legacy/crm/activities/tasks/guide
TASK_PRIORITIES = {"low": "LOW", "medium": "MEDIUM", "high": "HIGH"}
TASK_TYPES = {"call": "CALL", "email": "EMAIL", "todo": "TODO"}
# A date-only due date is shown at noon UTC, which is the same calendar day from UTC-11 to UTC+11.
DUE_TIME = time(12, 0)
COMPANY_PROPERTIES = ("name", "domain", "hubspot_owner_id")


def property_value(value: FieldValue) -> str:
    """HubSpot takes every property value as a string; an empty string clears it."""
    if value is None:
        return ""
    if isinstance(value, bool):
        return "true" if value else "false"
    if isinstance(value, float):
        return f"{value:.10g}"
    return str(value)


def hubspot_timestamp(day: date) -> str:
    return datetime.combine(day, DUE_TIME).isoformat() + "Z"


def html_body(text: str) -> str:
    """Task and note bodies are rich text in HubSpot: keep the rep's line breaks."""
    return "<br>".join(html.escape(line) for line in text.splitlines())


def association(to_id: str, type_id: int) -> dict[str, Any]:
    return {
        "to": {"id": to_id},
        "types": [{"associationCategory": "HUBSPOT_DEFINED", "associationTypeId": type_id}],
    }


def first_match_search(property_name: str, value: str, properties: list[str]) -> dict[str, Any]:
    """A CRM search body for the one record whose property equals `value`."""
    return {
        "filterGroups": [
            {"filters": [{"propertyName": property_name, "operator": "EQ", "value": value}]}
        ],
        "properties": properties,
        "limit": 1,
    }


def task_input(task: TaskRequest, key_property: str) -> dict[str, Any]:
    properties = {
        "hs_timestamp": hubspot_timestamp(task.due_date),
        "hs_task_subject": task.subject,
        "hs_task_body": html_body(task.body),
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": TASK_PRIORITIES.get(task.priority, "MEDIUM"),
        "hs_task_type": TASK_TYPES.get(task.task_type, "TODO"),
    }
    if task.owner_id:
        properties["hubspot_owner_id"] = task.owner_id
    if task.idempotency_key:
        properties[key_property] = task_key(task.idempotency_key)
    associations = [association(task.account_crm_id, TASK_TO_COMPANY)]
    if task.contact_crm_id:
        associations.append(association(task.contact_crm_id, TASK_TO_CONTACT))
    return {"properties": properties, "associations": associations}


def note_input(note: NoteRequest) -> dict[str, Any]:
    properties = {"hs_timestamp": note.timestamp.isoformat(), "hs_note_body": html_body(note.body)}
    if note.owner_id:
        properties["hubspot_owner_id"] = note.owner_id
    associations = [association(note.account_crm_id, NOTE_TO_COMPANY)]
    if note.contact_crm_id:
        associations.append(association(note.contact_crm_id, NOTE_TO_CONTACT))
    return {"properties": properties, "associations": associations}


def company_account(
    record_id: str, properties: dict[str, Any], match_field: str, owner_property: str | None
) -> CrmAccount:
    owner = properties.get("hubspot_owner_id") or (
        properties.get(owner_property) if owner_property else None
    )
    return CrmAccount(
        crm_id=record_id,
        name=properties.get("name") or f"company {record_id}",
        owner_id=owner or None,
        product_account_id=properties.get(match_field),
        domain=properties.get("domain"),
    )
