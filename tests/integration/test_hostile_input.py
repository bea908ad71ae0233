"""Issue 14: the hostile inputs fuzzing found answered 500 are each a 400 naming the field (or a
401 when unsigned), with nothing stored in Redis and no job queued, on every source."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.job import Job

from integration.jobs.queues import SIGNALS
from integration.store import waiting
from tests.conftest import fold, nothing_stored
from tests.integration.hostile import ENV, hostile_app, post, valid

YEAR_ONE = "0001-01-01T00:00:00+01:00"
YEAR_9999 = "9999-12-31T23:59:59-01:00"
OUT_OF_UTC = "is outside the calendar's range once converted to UTC"
CONTROL = "expected printable text without control characters, got 'acct\\nX-Injected: 1'"


@pytest.fixture
def client(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with hostile_app(tmp_path, redis_url) as app:
        yield app.test_client()


def body(value: Any) -> bytes:  # noqa: ANN401 - any JSON
    return json.dumps(value).encode()


def refused(answer: Any, field: str, message: str) -> bool:
    assert answer.status_code == 400, answer.get_data(as_text=True)
    assert answer.json == {"error": "invalid_payload", "field": field, "message": message}
    return True


@pytest.mark.parametrize(
    ("endpoint", "changes", "field", "message"),
    [
        ("usage", {"timestamp": YEAR_ONE}, "[1].timestamp", OUT_OF_UTC),
        ("usage", {"timestamp": YEAR_9999}, "[1].timestamp", OUT_OF_UTC),
        ("job-changes", {"detected_at": YEAR_ONE}, "[1].detected_at", OUT_OF_UTC),
        ("job-changes", {"detected_at": YEAR_9999}, "[1].detected_at", OUT_OF_UTC),
        ("usage", {"account_id": "acct\nX-Injected: 1"}, "[1].account_id", CONTROL),
        ("usage", {"account_id": {"a": 1}}, "[1].account_id", "Input should be a valid string"),
        ("usage", {"account_id": True}, "[1].account_id", "Input should be a valid string"),
        (
            "usage",
            {"account_id": " \t "},
            "[1].account_id",
            "String should have at least 1 character",
        ),
        (
            "usage",
            {"account_id": "a" * 201},
            "[1].account_id",
            "String should have at most 200 characters",
        ),
        (
            "job-changes",
            {"previous_account_id": "acct\nX-Injected: 1"},
            "[1].previous_account_id",
            CONTROL,
        ),
        (
            "job-changes",
            {"current_account_id": 42},
            "[1].current_account_id",
            "Input should be a valid string",
        ),
        (
            "job-changes",
            {"score": [[[[[[[[[1]]]]]]]]]},
            "[1].score",
            "nested more than 8 levels deep; flatten it",
        ),
        (
            "job-changes",
            {"notes": "x" * 20_000},
            "[1].notes",
            "takes 20002 characters as JSON; at most 16384 are kept",
        ),
        (
            "segment",
            {"context": "x"},
            "[1].context",
            "expected an object, got str",
        ),
        ("segment", {"traits": ["x"]}, "[1].traits", "expected an object, got list"),
        (
            "segment",
            {"context": {"traits": "x"}},
            "[1].context.traits",
            "expected an object, got str",
        ),
        (
            "segment",
            {"context": {"groupId": {"a": 1}}},
            "[1].context.groupId",
            "expected a string account id, got dict",
        ),
        (
            "segment",
            {"context": {"groupId": True}},
            "[1].context.groupId",
            "expected a string account id, got bool",
        ),
        (
            "segment",
            {"context": {"groupId": "   "}},
            "[1].context.groupId",
            "expected a non-blank account id",
        ),
        ("segment", {"messageId": {"a": 1}}, "[1].messageId", "expected a string, got dict"),
        ("segment", {"userId": [1]}, "[1].userId", "expected a string, got list"),
        (
            "hubspot",
            {"occurredAt": 10**20},
            "[1].occurredAt",
            "Input should be less than 7258118400000",
        ),
        (
            "hubspot",
            {"occurredAt": -(10**15)},
            "[1].occurredAt",
            "Input should be greater than or equal to 0",
        ),
    ],
)
def test_one_bad_item_refuses_the_whole_batch_naming_its_field(
    client: Any, redis: Redis, endpoint: str, changes: dict[str, Any], field: str, message: str
) -> None:
    batch = [valid(endpoint, 0), valid(endpoint, 1) | changes]
    assert refused(post(client, endpoint, body(batch)), field, message)
    assert nothing_stored(redis)
    assert Queue(SIGNALS, connection=redis).count == 0


def test_a_segment_batch_envelope_with_a_string_context_is_refused(
    client: Any, redis: Redis
) -> None:
    envelope = {"batch": [valid("segment")], "context": "x"}
    assert refused(
        post(client, "segment", body(envelope)), "context", "expected an object, got str"
    )
    item = valid("segment") | {"context": 7}
    answer = post(client, "segment", body({"batch": [item]}))
    assert refused(answer, "batch[0].context", "expected an object, got int")
    assert nothing_stored(redis)


@pytest.mark.parametrize("endpoint", ["usage", "job-changes", "segment", "hubspot"])
def test_deep_nesting_is_refused_before_any_parse_signed_or_not(
    client: Any, redis: Redis, endpoint: str
) -> None:
    deep = b"[" * 5000 + b"]" * 5000
    signed = post(client, endpoint, deep)
    unsigned = post(client, endpoint, deep, signed=False)
    assert refused(signed, "(body)", "JSON nested too deeply")
    # Segment must find a batch's first element to check its signature: the depth comes first.
    assert unsigned.status_code == (400 if endpoint == "segment" else 401)
    assert nothing_stored(redis)


def test_a_job_change_nested_900_deep_is_refused_and_its_batch_not_queued(
    client: Any, redis: Redis
) -> None:
    deep = {"custom": json.loads("[" * 900 + "]" * 900)}
    answer = post(
        client, "job-changes", body([valid("job-changes", 0), valid("job-changes", 1) | deep])
    )
    assert refused(answer, "(body)", "JSON nested too deeply")
    assert Queue(SIGNALS, connection=redis).count == 0


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        (b'{"seats": NaN}', "not valid JSON: NaN is not a JSON number"),
        (b"[Infinity]", "not valid JSON: Infinity is not a JSON number"),
        (
            b'{"user_id": "\\ud800"}',
            "holds a lone UTF-16 surrogate escape (\\ud800-\\udfff); send valid Unicode",
        ),
    ],
)
@pytest.mark.parametrize("endpoint", ["usage", "job-changes", "segment", "hubspot"])
def test_json_that_is_not_json_or_not_text_is_refused(
    client: Any, redis: Redis, endpoint: str, raw: bytes, message: str
) -> None:
    assert refused(post(client, endpoint, raw), "(body)", message)
    assert nothing_stored(redis)


def test_kept_job_change_fields_at_the_limit_queue_a_job_that_loads_back(
    client: Any, redis: Redis
) -> None:
    kept = {"score": [[[[[[[1]]]]]]], "notes": "n" * 16_000}
    answer = post(client, "job-changes", body(valid("job-changes") | kept))
    assert answer.status_code == 202
    [job_id] = Queue(SIGNALS, connection=redis).job_ids
    [payload] = Job.fetch(job_id, connection=redis).args  # unpickled by RQ
    assert payload["raw"] == kept
    assert json.loads(json.dumps(payload)) == payload


def test_an_escaped_emoji_is_text_and_accepted(client: Any, redis: Redis) -> None:
    event = valid("usage") | {"user_id": "\U0001f600"}
    answer = post(client, "usage", json.dumps(event, ensure_ascii=True).encode())
    assert answer.status_code == 202


def test_segment_takes_a_whole_number_company_id_as_the_account(client: Any, redis: Redis) -> None:
    message = valid("segment") | {"context": {"traits": {"company": {"id": 42}}}}
    answer = post(client, "segment", body(message))
    assert answer.json["events"] == 1
    fold(redis, client.application.extensions["integration.config"])
    assert waiting.waiting_accounts(redis) == {"42"}


def test_segment_skips_a_message_whose_timestamp_leaves_the_calendar(
    client: Any, redis: Redis
) -> None:
    message = valid("segment") | {"timestamp": YEAR_ONE}
    answer = post(client, "segment", body([valid("segment", 1), message]))
    assert answer.status_code == 202
    assert answer.json["skipped"] == {"no user or usable timestamp": 1}


def test_a_hubspot_timestamp_header_of_unicode_digits_is_a_401(client: Any, redis: Redis) -> None:
    headers = {"X-HubSpot-Signature-v3": "x", "X-HubSpot-Request-Timestamp": "\u00b2"}
    answer = client.post("/webhooks/hubspot", data=b"[]", headers=headers)
    assert answer.status_code == 401
    assert nothing_stored(redis)


def test_the_openapi_document_describes_our_json_endpoints(client: Any) -> None:
    answer = client.get("/openapi.json")
    assert answer.status_code == 200
    assert sorted(answer.json["paths"]) == [
        "/webhooks/hubspot",
        "/webhooks/job-changes",
        "/webhooks/segment",
        "/webhooks/usage",
    ]
    account = answer.json["components"]["schemas"]["UsageEventIn"]["properties"]["account_id"]
    assert (account["type"], account["maxLength"]) == ("string", 200)
