"""The HTTP edge against a real Redis: signatures, bad bodies, Redis down, re-deliveries."""

from __future__ import annotations

import json
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue

from integration.cli.devredis import free_port
from integration.config.settings import Settings
from integration.jobs.queues import EVALUATE, SIGNALS
from integration.store import keys, waiting
from tests.conftest import (
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    fold,
    nothing_stored,
    post_signed,
    sign,
    signed_headers,
    whsec,
)
from webhooks.app import create_app

EVENT = {"account_id": "acme", "user_id": "u1", "event": "login"}


def usage_event() -> dict[str, Any]:
    from datetime import UTC, datetime

    return EVENT | {"timestamp": datetime.now(UTC).isoformat()}


def post_raw(client: Any, body: bytes, headers: dict[str, str]) -> Any:
    return client.post("/webhooks/usage", data=body, headers=headers)


def test_a_signed_usage_event_is_accepted_and_stored(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    answer = post_signed(
        client,
        "/webhooks/usage",
        webhook_secrets[USAGE_SECRET_ENV],
        [usage_event(), usage_event() | {"user_id": "u2"}],
    )
    assert answer.status_code == 202
    assert answer.json == {"status": "accepted", "events": 2, "accounts": 1}
    assert redis.xlen(keys.ingest_stream()) == 1  # accepted: durably in the ingest stream
    assert fold(redis) == 2  # what the `integration fold` consumer does moments later
    assert redis.xlen(keys.ingest_stream()) == 0
    assert waiting.waiting_accounts(redis) == {"acme"}
    assert Queue(EVALUATE, connection=redis).count == 1


@pytest.mark.parametrize(
    ("mangle", "message"),
    [
        (
            lambda h, body, s: {k: v for k, v in h.items() if k != "webhook-signature"},
            "missing header webhook-signature",
        ),
        (
            lambda h, body, s: {k: v for k, v in h.items() if k != "webhook-id"},
            "missing header webhook-id",
        ),
        (
            lambda h, body, s: (
                h
                | {
                    "webhook-signature": sign(
                        whsec(), h["webhook-id"], int(h["webhook-timestamp"]), body
                    )
                }
            ),
            "webhook-signature does not match the body for any v1 signature",
        ),
        (
            lambda h, body, s: h | {"webhook-signature": "v1,bm90IGl0"},
            "webhook-signature does not match the body for any v1 signature",
        ),
        (
            lambda h, body, s: h | {"webhook-signature": "garbage"},
            "webhook-signature is malformed: expected 'v1,<base64>' entries separated by spaces",
        ),
        (
            lambda h, body, s: signed_headers(s, body, timestamp=int(time.time()) - 400),
            "webhook-timestamp is more than 300s behind our clock",
        ),
        (
            lambda h, body, s: signed_headers(s, body, timestamp=int(time.time()) + 400),
            "webhook-timestamp is more than 300s ahead of our clock",
        ),
        (
            lambda h, body, s: h | {"webhook-timestamp": "soon"},
            "webhook-timestamp must be Unix seconds, got 'soon'",
        ),
    ],
    ids=[
        "no-signature",
        "no-id",
        "wrong-secret",
        "wrong-signature",
        "malformed",
        "stale",
        "future",
        "timestamp-not-a-number",
    ],
)
def test_bad_signatures_are_rejected_with_401_and_nothing_stored(
    client: Any, redis: Redis, webhook_secrets: dict[str, str], mangle: Any, message: str
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    body = json.dumps(usage_event()).encode()
    answer = post_raw(client, body, mangle(signed_headers(secret, body), body, secret))
    assert answer.status_code == 401
    assert answer.json == {"error": "invalid_signature", "message": message}
    assert nothing_stored(redis)


def test_a_tampered_body_is_rejected(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    body = json.dumps(usage_event()).encode()
    headers = signed_headers(webhook_secrets[USAGE_SECRET_ENV], body)
    answer = post_raw(client, body.replace(b"u1", b"u9"), headers)
    assert answer.status_code == 401
    assert nothing_stored(redis)


def test_the_usage_secret_does_not_open_the_job_change_endpoint(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    change = {"event_id": "e1", "change_type": "left_company", "email": "a@b.example"}
    answer = post_signed(client, "/webhooks/job-changes", webhook_secrets[USAGE_SECRET_ENV], change)
    assert answer.status_code == 401
    assert nothing_stored(redis)


@pytest.mark.parametrize(
    ("path", "body", "field", "message"),
    [
        (
            "/webhooks/usage",
            b"{not json",
            "(body)",
            "not valid JSON: Expecting property name enclosed in double quotes: line 1 column 2 "
            "(char 1)",
        ),
        ("/webhooks/usage", json.dumps({**EVENT}).encode(), "timestamp", "is required"),
        ("/webhooks/usage", b"[" * 100_000, "(body)", "JSON nested too deeply"),
        (
            "/webhooks/usage",
            json.dumps(EVENT).encode("utf-16"),
            "(body)",
            "not UTF-8 text (byte 0); send JSON encoded as UTF-8",
        ),
        (
            "/webhooks/usage",
            b"42",
            "(body)",
            "Input should be a valid dictionary or instance of UsageEventIn",
        ),
        (
            "/webhooks/usage",
            json.dumps([{**EVENT, "timestamp": "2026-11-23T10:00:00"}]).encode(),
            "[0].timestamp",
            "Input should have timezone info",
        ),
        (
            "/webhooks/usage",
            json.dumps([{**EVENT, "timestamp": "2020-01-06T10:00:00Z"}]).encode(),
            "[0].timestamp",
            "is more than 180 days old; send older days as daily rollups with "
            "`integration import usage`",
        ),
        (
            "/webhooks/job-changes",
            json.dumps({"event_id": "e1", "email": "a@b.example"}).encode(),
            "change_type",
            "is required",
        ),
        (
            "/webhooks/job-changes",
            json.dumps({"event_id": "e1", "change_type": "promotion"}).encode(),
            "email",
            "is required when linkedin_url is missing: we need one of them to find the person",
        ),
    ],
)
def test_malformed_bodies_get_400_naming_the_field_and_nothing_is_queued(
    client: Any,
    redis: Redis,
    webhook_secrets: dict[str, str],
    path: str,
    body: bytes,
    field: str,
    message: str,
) -> None:
    secret_env = USAGE_SECRET_ENV if "usage" in path else PEOPLE_SECRET_ENV
    answer = client.post(path, data=body, headers=signed_headers(webhook_secrets[secret_env], body))
    assert answer.status_code == 400
    assert answer.json == {"error": "invalid_payload", "field": field, "message": message}
    assert nothing_stored(redis)


def test_a_redelivered_usage_webhook_is_counted_once(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    events = [usage_event(), usage_event() | {"user_id": "u2"}]
    first = post_signed(client, "/webhooks/usage", secret, events, msg_id="msg_same")
    again = post_signed(client, "/webhooks/usage", secret, events, msg_id="msg_same")
    assert (first.status_code, again.status_code) == (202, 200)
    assert again.json == {"status": "duplicate", "delivery_id": "msg_same"}
    assert redis.xlen(keys.ingest_stream()) == 1  # the re-delivery never entered the stream
    fold(redis)
    assert Queue(EVALUATE, connection=redis).count == 1
    daily_events = redis.get("ci:{acct:acme}:daily:events") or b""
    assert sum(daily_events) == 2  # two events, stored once, whatever the day slot


def test_a_redelivered_job_change_is_queued_once(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[PEOPLE_SECRET_ENV]
    change = {
        "event_id": "e1",
        "source": "clay",
        "change_type": "left_company",
        "email": "a@b.example",
    }
    first = post_signed(client, "/webhooks/job-changes", secret, change)
    # The sender retries under a new delivery id: the (source, event_id) pair still matches.
    again = post_signed(client, "/webhooks/job-changes", secret, change)
    assert first.json == {"status": "accepted", "queued": 1, "duplicates": 0}
    assert again.status_code == 200
    assert again.json["status"] == "duplicate"
    assert Queue(SIGNALS, connection=redis).count == 1


@pytest.fixture
def client_without_redis(config_file: Path, context: Any) -> Iterator[Any]:
    down = Settings(config=config_file, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down, context.config)
    yield app.test_client()
    app.extensions["integration.redis"].close()


def test_when_redis_is_down_webhooks_answer_503_so_the_sender_retries(
    client_without_redis: Any, webhook_secrets: dict[str, str]
) -> None:
    usage = post_signed(
        client_without_redis, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], usage_event()
    )
    people = post_signed(
        client_without_redis,
        "/webhooks/job-changes",
        webhook_secrets[PEOPLE_SECRET_ENV],
        {"event_id": "e1", "change_type": "left_company", "email": "a@b.example"},
    )
    assert (usage.status_code, people.status_code) == (503, 503)
    assert usage.json == {
        "error": "unavailable",
        "message": "signal storage is unavailable; nothing was accepted, please retry",
    }


def test_healthz_reports_redis(client: Any, client_without_redis: Any) -> None:
    assert (client.get("/healthz").status_code, client.get("/healthz").json) == (
        200,
        {"status": "ok", "redis": "ok"},
    )
    assert client_without_redis.get("/healthz").status_code == 503
