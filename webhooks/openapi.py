"""GET /openapi.json: our JSON endpoints described for senders and for schemathesis.

The body schemas are generated from the pydantic models that validate them (UsageEventIn,
JobChangeIn, HubSpotEvent), so the document cannot drift from the code; Segment's messages are
described loosely, as its spec is (reference/segment.md 2). Salesforce's SOAP endpoint is left
out: its contract is Salesforce's WSDL (shared/specs/salesforce), not ours.
"""

from __future__ import annotations

from functools import cache
from typing import Any

from flask import Blueprint, Response, jsonify
from pydantic import BaseModel

from integration.signals.events import JobChangeIn, UsageEventIn
from webhooks.hubspot import HubSpotEvent

bp = Blueprint("openapi", __name__)
REF = "#/components/schemas/{model}"
STANDARD_WEBHOOK_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
HUBSPOT_HEADERS = ("X-HubSpot-Signature-v3", "X-HubSpot-Request-Timestamp")

SEGMENT_MESSAGE: dict[str, Any] = {
    "type": "object",
    "description": "One Segment message (track, page, identify, group; others are skipped).",
    "additionalProperties": True,
    "properties": {
        "type": {"type": "string"},
        "messageId": {"type": "string", "maxLength": 200},
        "userId": {"type": ["string", "integer"]},
        "anonymousId": {"type": ["string", "integer"]},
        "timestamp": {"type": "string"},
        "event": {"type": "string"},
        "groupId": {"type": "string", "maxLength": 200},
        "context": {
            "type": "object",
            "properties": {"groupId": {"type": "string"}, "traits": {"type": "object"}},
        },
        "traits": {"type": "object"},
        "properties": {"type": "object"},
    },
}
ERROR: dict[str, Any] = {
    "type": "object",
    "required": ["error", "message"],
    "properties": {
        "error": {"type": "string"},
        "field": {"type": "string", "description": "the path of the field to fix"},
        "message": {"type": "string"},
    },
}


@bp.get("/openapi.json")
def openapi_document() -> Response:
    return jsonify(document())


@cache
def document() -> dict[str, Any]:
    """The OpenAPI 3.1 document (its schemas are JSON Schema 2020-12, as pydantic writes)."""
    schemas: dict[str, Any] = {"Error": ERROR, "SegmentMessage": SEGMENT_MESSAGE}
    for model in (UsageEventIn, JobChangeIn, HubSpotEvent):
        schemas.update(_schemas(model))
    return {
        "openapi": "3.1.0",
        "info": {"title": "cs-playbooks webhooks", "version": "1"},
        "paths": {
            "/webhooks/usage": _post(
                "Product usage events (one, or an array)",
                _one_or_many("UsageEventIn"),
                STANDARD_WEBHOOK_HEADERS,
            ),
            "/webhooks/job-changes": _post(
                "Job changes in our neutral shape (one, or an array)",
                _one_or_many("JobChangeIn"),
                STANDARD_WEBHOOK_HEADERS,
            ),
            "/webhooks/segment": _post(
                "Segment's Webhooks destination: a message, a bare array, or a batch envelope",
                {
                    # anyOf: a batch envelope is an object a message's open schema also takes.
                    "anyOf": [
                        _ref("SegmentMessage"),
                        {"type": "array", "items": _ref("SegmentMessage")},
                        {
                            "type": "object",
                            "required": ["batch"],
                            "properties": {
                                "batch": {"type": "array", "items": _ref("SegmentMessage")},
                                "context": {"type": "object"},
                            },
                        },
                    ]
                },
                ("X-Signature",),
            ),
            "/webhooks/hubspot": _post(
                "HubSpot's webhook deliveries (an array of events)",
                {"type": "array", "items": _ref("HubSpotEvent")},
                HUBSPOT_HEADERS,
            ),
        },
        "components": {"schemas": schemas},
    }


def _schemas(model: type[BaseModel]) -> dict[str, Any]:
    schema = model.model_json_schema(by_alias=True, ref_template=REF)
    nested = schema.pop("$defs", {})
    return {model.__name__: schema, **nested}


def _ref(name: str) -> dict[str, str]:
    return {"$ref": REF.format(model=name)}


def _one_or_many(name: str) -> dict[str, Any]:
    return {"oneOf": [_ref(name), {"type": "array", "items": _ref(name), "minItems": 1}]}


def _post(summary: str, body: dict[str, Any], headers: tuple[str, ...]) -> dict[str, Any]:
    error = {"content": {"application/json": {"schema": _ref("Error")}}}
    return {
        "post": {
            "summary": summary,
            "parameters": [
                {"name": name, "in": "header", "required": True, "schema": {"type": "string"}}
                for name in headers
            ],
            "requestBody": {"required": True, "content": {"application/json": {"schema": body}}},
            "responses": {
                "200": {"description": "a re-delivery, or events acknowledged and ignored"},
                "202": {"description": "accepted and stored"},
                "400": {"description": "the body is invalid; `field` names what to fix", **error},
                "401": {"description": "the signature is missing, wrong or stale", **error},
                "404": {"description": "this source is not configured", **error},
                "413": {"description": "the body is over 5 MB"},
                "503": {"description": "storage is unavailable; retry", **error},
            },
        }
    }
