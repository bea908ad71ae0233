"""`integration provision` for HubSpot: create the properties the config maps to, idempotently.

Creates our property group, one company property per mapped field (typed from FIELD_SPECS), the
unique company property that holds the product's account id, and the task property that holds our
idempotency key; reports what already exists, and any existing property of the wrong type.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from adapters.hubspot.adapter import HubSpotCrm
from integration.config.schema import Config
from integration.errors import CrmError
from integration.risk.field_specs import FIELD_SPECS, FieldSpec

# https://developers.hubspot.com/docs/api-reference/crm-properties-v3/guide: type and fieldType.
HUBSPOT_TYPES = {
    "enumeration": ("enumeration", "select"),
    "text": ("string", "text"),
    "long_text": ("string", "textarea"),
    "number": ("number", "number"),
    "date": ("date", "date"),
}
NOT_FOUND = 404
CONFLICT = 409


def provision(crm: HubSpotCrm, config: Config) -> list[str]:
    """Make sure every property exists; return one line per property saying what was done."""
    group = config.crm.hubspot.property_group
    lines = [_ensure_group(crm, "companies", group), _ensure_group(crm, "tasks", group)]
    mapped = config.fields.model_dump()
    for field_name, spec in FIELD_SPECS.items():
        if mapped[field_name]:
            lines.append(_ensure_property(crm, "companies", mapped[field_name], spec, group))
    match = FieldSpec(
        "Product account id",
        "text",
        "The product's own id for this account; usage signals carry it.",
    )
    lines.append(
        _ensure_property(
            crm, "companies", config.account_match.crm_field, match, group, unique=True
        )
    )
    key = FieldSpec(
        "Playbook task key",
        "text",
        "Set by the playbook service so a retried task is never created twice.",
    )
    lines.append(_ensure_property(crm, "tasks", config.crm.hubspot.task_key_property, key, group))
    return lines


def _ensure_group(crm: HubSpotCrm, object_type: str, name: str) -> str:
    body = {"name": name, "label": "Customer success playbooks", "displayOrder": -1}
    created = _create_unless_present(
        crm,
        f"group {object_type}.{name}",
        lambda hub: hub.crm.properties.groups_api.get_by_name(object_type, name),
        lambda hub: hub.crm.properties.groups_api.create(object_type, property_group_create=body),
    )
    return f"property group {object_type}.{name}: {'created' if created else 'already there'}"


def _ensure_property(
    crm: HubSpotCrm, object_type: str, name: str, spec: FieldSpec, group: str, unique: bool = False
) -> str:
    hubspot_type, field_type = HUBSPOT_TYPES[spec.kind]
    body: dict[str, Any] = {
        "name": name,
        "label": spec.label,
        "type": hubspot_type,
        "fieldType": field_type,
        "groupName": group,
        "description": spec.description,
        "hasUniqueValue": unique,
    }
    if spec.options:
        body["options"] = [
            {"label": option.title(), "value": option, "displayOrder": i, "hidden": False}
            for i, option in enumerate(spec.options)
        ]
    existing: dict[str, Any] = {}

    def get(hub: Any) -> Any:  # noqa: ANN401 - the SDK's models are untyped
        found = hub.crm.properties.core_api.get_by_name(object_type, name)
        existing["type"] = found.type
        existing["unique"] = bool(getattr(found, "has_unique_value", False))
        existing["options"] = {o.value for o in getattr(found, "options", None) or []}
        return found

    created = _create_unless_present(
        crm,
        f"property {object_type}.{name}",
        get,
        lambda hub: hub.crm.properties.core_api.create(object_type, property_create=body),
    )
    where = f"property {object_type}.{name} ({hubspot_type})"
    if created:
        return f"{where}: created"
    if existing.get("type") not in (None, hubspot_type):
        return (
            f"{where}: EXISTS AS {existing['type']}, expected {hubspot_type}; "
            "writes may be refused, map another property or change its type in HubSpot"
        )
    if unique and not existing.get("unique"):
        return (
            f"{where}: EXISTS WITHOUT unique values, so companies cannot be read by it; "
            "HubSpot cannot make it unique later: map a new property with unique values"
        )
    missing = sorted(set(spec.options) - existing.get("options", set()))
    if missing:
        return (
            f"{where}: LACKS OPTIONS {', '.join(missing)}; add them in HubSpot "
            "or writes of those values are refused"
        )
    return f"{where}: already there"


def _create_unless_present(
    crm: HubSpotCrm, what: str, get: Callable[[Any], Any], create: Callable[[Any], Any]
) -> bool:
    try:
        crm.transport.call(f"get {what}", get)
    except CrmError as exc:
        if exc.status != NOT_FOUND:
            raise
    else:
        return False
    try:
        crm.transport.call(f"create {what}", create)
    except CrmError as exc:
        if exc.status == CONFLICT:  # created meanwhile by someone else: that is fine
            return False
        raise
    return True
