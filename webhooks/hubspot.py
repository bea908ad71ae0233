"""POST /webhooks/hubspot: HubSpot's batched CRM events, verified, mapped and queued one job each.

HubSpot retries any non-2xx for a day and may deliver an event twice or out of order, so each
event's job id is its dedupe key (portalId, subscriptionId, eventId, occurredAt), and events we
do not act on are answered 2xx and counted as ignored.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from datetime import UTC, datetime
from typing import Any

from flask import Blueprint, Response, jsonify, request
from pydantic import BaseModel, ConfigDict, Field, ValidationError

from integration.config.schema import HubSpotCrm
from integration.errors import PayloadError
from integration.jobs.queues import enqueue_crm_change
from integration.signals.crm_changes import ChangeKind, CrmChange
from integration.signals.limits import EARLIEST_MS, LATEST_MS
from webhooks.clients import queue_redis
from webhooks.edge import body_text, config, parse_json
from webhooks.hubspot_signature import verify_hubspot

bp = Blueprint("hubspot", __name__)
SOURCE = "hubspot"
TASK_OBJECT_TYPE = "0-27"  # HubSpot's object type id for tasks
# HubSpot sends "up to 100 events" a request (reference/hubspot.md 1.4); ten times that is hostile.
MAX_EVENTS = 1000


class HubSpotEvent(BaseModel):
    """One event of a delivery (reference/hubspot.md 1.4); HubSpot adds fields: extra is ignored."""

    model_config = ConfigDict(extra="ignore", populate_by_name=True)

    subscription_type: str | None = Field(None, alias="subscriptionType")
    event_type: str | None = Field(None, alias="eventType")  # the docs' table's name for it
    object_id: int | None = Field(None, alias="objectId")
    object_type_id: str | None = Field(None, alias="objectTypeId")
    property_name: str | None = Field(None, alias="propertyName")
    property_value: str | None = Field(None, alias="propertyValue")
    # Epoch milliseconds; outside our calendar's range it would break datetime.fromtimestamp.
    occurred_at: int = Field(alias="occurredAt", ge=EARLIEST_MS, lt=LATEST_MS)
    event_id: int = Field(alias="eventId")
    subscription_id: int = Field(alias="subscriptionId")
    portal_id: int = Field(alias="portalId")
    association_type: str | None = Field(None, alias="associationType")
    from_object_id: int | None = Field(None, alias="fromObjectId")
    to_object_id: int | None = Field(None, alias="toObjectId")
    association_removed: bool = Field(False, alias="associationRemoved")

    @property
    def kind(self) -> str:
        return self.subscription_type or self.event_type or ""


def _title_changed(event: HubSpotEvent) -> tuple[ChangeKind, str, str | None] | None:
    if event.property_name == "jobtitle" and event.object_id is not None:
        return ChangeKind.CONTACT_TITLE_CHANGED, str(event.object_id), None
    return None


def _left_company(event: HubSpotEvent) -> tuple[ChangeKind, str, str | None] | None:
    # HubSpot sends both sides of an association change; the contact's side is enough.
    if event.association_type == "CONTACT_TO_COMPANY" and event.association_removed:
        return ChangeKind.CONTACT_LEFT_ACCOUNT, str(event.from_object_id), str(event.to_object_id)
    return None


def _owner_changed(event: HubSpotEvent) -> tuple[ChangeKind, str, str | None] | None:
    if event.property_name == "hubspot_owner_id" and event.property_value:
        return ChangeKind.ACCOUNT_OWNER_CHANGED, str(event.object_id), None
    return None


def _task_completed(event: HubSpotEvent) -> tuple[ChangeKind, str, str | None] | None:
    is_task = event.kind == "task.propertyChange" or event.object_type_id == TASK_OBJECT_TYPE
    if is_task and event.property_name == "hs_task_status" and event.property_value == "COMPLETED":
        return ChangeKind.TASK_COMPLETED, str(event.object_id), None
    return None


Mapper = Callable[[HubSpotEvent], tuple[ChangeKind, str, str | None] | None]
MAPPERS: dict[str, Mapper] = {
    "contact.propertyChange": _title_changed,
    "contact.associationChange": _left_company,
    "company.propertyChange": _owner_changed,
    "object.propertyChange": _task_completed,
    "task.propertyChange": _task_completed,
}


def to_change(event: HubSpotEvent) -> CrmChange | None:
    """The CRM-neutral change this event means, or None for events we do not act on."""
    mapper = MAPPERS.get(event.kind)
    mapped = mapper(event) if mapper else None
    if mapped is None:
        return None
    kind, subject, related = mapped
    return CrmChange(
        crm=SOURCE,
        kind=kind,
        subject_id=subject,
        related_id=related,
        occurred_at=datetime.fromtimestamp(event.occurred_at / 1000, UTC),
        delivery_key=f"{event.portal_id}:{event.subscription_id}:{event.event_id}:{event.occurred_at}",
        value=event.property_value,
    )


def parse_events(body: Any, max_events: int = MAX_EVENTS) -> list[HubSpotEvent]:  # noqa: ANN401
    """Every event of a delivery, validated before any is queued: one bad event refuses all."""
    items = body if isinstance(body, list) else [body]
    if len(items) > max_events:
        msg = f"a delivery holds at most {max_events} events, got {len(items)}"
        raise PayloadError(SOURCE, "(body)", msg)
    events = []
    for index, item in enumerate(items):
        try:
            events.append(HubSpotEvent.model_validate(item))
        except ValidationError as exc:
            first = exc.errors()[0]
            field = f"[{index}]." + ".".join(str(part) for part in first["loc"])
            raise PayloadError(SOURCE, field.rstrip("."), first["msg"]) from exc
    return events


@bp.post("/webhooks/hubspot")
def receive_hubspot() -> tuple[Response, int]:
    settings = _webhook_settings()
    if settings is None or settings.webhook is None:
        message = "HubSpot webhooks are not configured (crm.kind hubspot, crm.hubspot.webhook)"
        return jsonify(error="not_configured", message=message), 404
    text = body_text()
    verify_hubspot(
        config().secret(settings.webhook.client_secret_env),
        request.method,
        settings.webhook.public_url or request.url,
        text,
        dict(request.headers),
        int(time.time() * 1000),
        settings.webhook.accept_legacy_signatures,
    )
    events = parse_events(parse_json(text))
    changes = [change for event in events if (change := to_change(event)) is not None]
    queued = sum(enqueue_crm_change(queue_redis(), change) for change in changes)
    return jsonify(
        status="accepted",
        queued=queued,
        duplicates=len(changes) - queued,
        ignored=len(events) - len(changes),
    ), 200


def _webhook_settings() -> HubSpotCrm | None:
    return config().crm.hubspot if config().crm.kind == "hubspot" else None
