"""An app with every JSON source switched on, and a signer for each, for the hostile-input tests
(test_hostile_input.py, test_fuzz.py) and bench/fuzz.py."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
import uuid
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import yaml
from flask import Flask

from integration.config.settings import Settings
from integration.jobs.context import read_config
from webhooks.app import create_app

USAGE_SECRET = "whsec_" + base64.b64encode(b"usage-secret-for-hostile-tests!!").decode()
PEOPLE_SECRET = "whsec_" + base64.b64encode(b"people-secret-for-hostile-tests!").decode()
SEGMENT_SECRET = "segment-shared-secret"
HUBSPOT_SECRET = "hubspot-client-secret"
HUBSPOT_URL = "http://localhost/webhooks/hubspot"
ENV = {
    "HOSTILE_USAGE_SECRET": USAGE_SECRET,
    "HOSTILE_PEOPLE_SECRET": PEOPLE_SECRET,
    "HOSTILE_SEGMENT_SECRET": SEGMENT_SECRET,
    "HOSTILE_HUBSPOT_SECRET": HUBSPOT_SECRET,
    "HOSTILE_HUBSPOT_TOKEN": "not-used",
}
ENDPOINTS = ("usage", "job-changes", "segment", "hubspot")


def config() -> dict[str, Any]:
    """HubSpot as the CRM (for its webhook; never called) and every webhook source signed."""
    return {
        "crm": {
            "kind": "hubspot",
            "hubspot": {
                "base_url": "http://127.0.0.1:9",
                "access_token_env": "HOSTILE_HUBSPOT_TOKEN",
                "webhook": {
                    "client_secret_env": "HOSTILE_HUBSPOT_SECRET",
                    "public_url": HUBSPOT_URL,
                },
            },
        },
        "webhooks": {
            "usage": {"secret_env": "HOSTILE_USAGE_SECRET"},
            "job_changes": {"secret_env": "HOSTILE_PEOPLE_SECRET"},
            "segment": {"shared_secret_env": "HOSTILE_SEGMENT_SECRET"},
            "max_events_per_request": 100,
        },
    }


@contextmanager
def hostile_app(folder: Path, redis_url: str) -> Iterator[Flask]:
    """The real app on `redis_url` (the environment must hold ENV)."""
    path = folder / "hostile.yaml"
    path.write_text(yaml.safe_dump(config()))
    app = create_app(Settings(config=path, redis_url=redis_url), read_config(path))
    try:
        yield app
    finally:
        app.extensions["integration.redis"].close()


def standard_headers(secret: str, body: bytes) -> dict[str, str]:
    msg_id, stamp = f"msg_{uuid.uuid4().hex}", str(int(time.time()))
    key = base64.b64decode(secret.removeprefix("whsec_"))
    mac = hmac.new(key, f"{msg_id}.{stamp}.".encode() + body, hashlib.sha256).digest()
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": stamp,
        "webhook-signature": "v1," + base64.b64encode(mac).decode(),
    }


def segment_headers(body: bytes) -> dict[str, str]:
    """HMAC-SHA1 of the body, or of a bare array's first element (reference/segment.md 4.3)."""
    signed = body
    try:
        text = body.decode()
        if text.lstrip().startswith("["):
            start = len(text) - len(text.lstrip()) + 1
            while start < len(text) and text[start].isspace():
                start += 1
            _, end = json.JSONDecoder().raw_decode(text, start)
            signed = text[start:end].encode()
    except (ValueError, RecursionError):
        signed = body
    return {"X-Signature": hmac.new(SEGMENT_SECRET.encode(), signed, hashlib.sha1).hexdigest()}


def hubspot_headers(body: bytes) -> dict[str, str]:
    stamp = str(int(time.time() * 1000))
    message = b"POST" + HUBSPOT_URL.encode() + body + stamp.encode()
    digest = hmac.new(HUBSPOT_SECRET.encode(), message, hashlib.sha256).digest()
    return {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
    }


SIGNERS: dict[str, Callable[[bytes], dict[str, str]]] = {
    "usage": lambda body: standard_headers(USAGE_SECRET, body),
    "job-changes": lambda body: standard_headers(PEOPLE_SECRET, body),
    "segment": segment_headers,
    "hubspot": hubspot_headers,
}


def post(client: Any, endpoint: str, body: bytes, signed: bool = True) -> Any:
    headers = {"Content-Type": "application/json"}
    if signed:
        headers |= SIGNERS[endpoint](body)
    return client.post(f"/webhooks/{endpoint}", data=body, headers=headers)


def fresh(hours: int = 1) -> str:
    return (datetime.now(UTC) - timedelta(hours=hours)).isoformat()


def valid(endpoint: str, n: int = 0) -> dict[str, Any]:
    """One valid item for each endpoint (n makes its ids unique)."""
    if endpoint == "usage":
        return {"account_id": "acme", "user_id": f"u{n}", "event": "login", "timestamp": fresh()}
    if endpoint == "job-changes":
        return {"event_id": f"e{n}", "change_type": "left_company", "email": f"p{n}@x.example"}
    if endpoint == "segment":
        return {
            "type": "track",
            "event": "Report Viewed",
            "messageId": f"m-{n}",
            "userId": f"u{n}",
            "timestamp": fresh(),
            "context": {"groupId": "acme"},
        }
    return {
        "eventId": n,
        "subscriptionId": 25,
        "portalId": 33,
        "occurredAt": int(time.time() * 1000),
        "subscriptionType": "contact.propertyChange",
        "objectId": 101,
        "propertyName": "jobtitle",
        "propertyValue": "VP Operations",
    }


def nested(depth: int) -> Any:  # noqa: ANN401 - JSON
    value: Any = 1
    for _ in range(depth):
        value = [value]
    return value


# Values fuzzing found or that broke parsers elsewhere: dates at the calendar's edges, ids that
# are no strings or carry control characters, numbers past every range, deep and long values.
HOSTILE_VALUES: tuple[Any, ...] = (
    "0001-01-01T00:00:00+01:00",
    "9999-12-31T23:59:59-01:00",
    "2024-13-45T99:99:99Z",
    "acct\nX-Injected: 1",
    "\x00",
    " \t ",
    "\u202e\u200b",
    "x" * 5000,
    {"a": 1},
    [],
    True,
    None,
    0,
    -1,
    10**20,
    -(10**20),
    1.5e308,
    -0.0,
    "",
    "x",
    nested(20),
    nested(40),
    {"groupId": {"a": 1}, "traits": "x"},
)
HOSTILE_KEYS = (
    "account_id",
    "timestamp",
    "seats",
    "properties",
    "previous_account_id",
    "current_account_id",
    "detected_at",
    "custom",
    "context",
    "traits",
    "groupId",
    "messageId",
    "userId",
    "type",
    "occurredAt",
    "objectId",
    "eventId",
    "batch",
)
# Bodies that are not JSON objects at all.
HOSTILE_BODIES: tuple[bytes, ...] = (
    b"",
    b"[",
    b"[" * 5000,
    b"[" * 5000 + b"]" * 5000,
    b'{"a":' * 3000,
    b"NaN",
    b"[Infinity, -Infinity]",
    b'"\\ud800"',
    b"\xff\xfe\x00",
    b"1" * 5000,
    b"[]",
    b"{}",
    b"null",
    b'{"batch": [], "context": "x"}',
    b'{"batch": [1, "x", null, {"context": []}]}',
)
