"""Issue 14: no input, signed or not, gets a 500, and a refused one stores nothing.

Two fuzzers, each on a bounded, derandomised budget so CI runs the same cases in seconds:
hypothesis bodies built from valid items with one field made hostile (and bodies that are no
JSON at all), and schemathesis cases generated from our own /openapi.json, sent as generated
(so mostly refused for their signature) and again signed by us.
"""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import schemathesis
from flask import Flask
from hypothesis import HealthCheck, given, settings
from hypothesis import strategies as st
from redis import Redis
from schemathesis.checks import not_a_server_error
from schemathesis.core import NOT_SET

from tests.integration.hostile import (
    ENDPOINTS,
    ENV,
    HOSTILE_BODIES,
    HOSTILE_KEYS,
    HOSTILE_VALUES,
    SIGNERS,
    hostile_app,
    post,
    valid,
)

BUDGET = settings(
    max_examples=40,
    deadline=None,
    derandomize=True,
    database=None,
    suppress_health_check=[HealthCheck.too_slow, HealthCheck.data_too_large],
)
ANSWERS = {200, 202, 400, 401, 413}
json_values = st.recursive(
    st.none() | st.booleans() | st.integers() | st.floats(allow_nan=False) | st.text(max_size=20),
    lambda inner: (
        st.lists(inner, max_size=3) | st.dictionaries(st.text(max_size=8), inner, max_size=3)
    ),
    max_leaves=12,
)
hostile = st.sampled_from(HOSTILE_VALUES) | json_values


@pytest.fixture
def app(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Flask]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with hostile_app(tmp_path, redis_url) as built:
        yield built


@st.composite
def bodies(draw: st.DrawFn, endpoint: str) -> bytes:
    """A valid item with one field made hostile, a batch of them, or a body that is no JSON."""
    if draw(st.integers(0, 5)) == 0:
        return draw(st.sampled_from(HOSTILE_BODIES) | st.binary(max_size=64))
    items = []
    for n in range(draw(st.integers(1, 3))):
        item = valid(endpoint, n)
        key = draw(st.sampled_from(sorted(item)) | st.sampled_from(HOSTILE_KEYS))
        item[key] = draw(hostile)
        items.append(item)
    value = items[0] if len(items) == 1 and draw(st.booleans()) else items
    return json.dumps(value).encode()


def answer_is_safe(answer: Any, redis: Redis, keys_before: int) -> None:
    """No 500; a refusal names a field (400) and writes nothing."""
    assert answer.status_code in ANSWERS, answer.get_data(as_text=True)[:500]
    if answer.status_code == 400:
        assert answer.json["error"] == "invalid_payload"
        assert answer.json["field"]
    if answer.status_code in (400, 401, 413):
        assert redis.dbsize() == keys_before


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
@pytest.mark.parametrize("endpoint", ENDPOINTS)
def test_hostile_bodies_never_get_a_500(
    app: Flask, redis: Redis, endpoint: str, signed: bool
) -> None:
    client = app.test_client()

    @BUDGET
    @given(body=bodies(endpoint))
    def send(body: bytes) -> None:
        keys_before = redis.dbsize()
        answer_is_safe(post(client, endpoint, body, signed), redis, keys_before)

    send()


def raw_body(case: schemathesis.Case) -> bytes:
    """The bytes to sign: negative cases may carry raw bytes or text instead of JSON."""
    if case.body is NOT_SET:
        return b""
    if isinstance(case.body, bytes):
        return case.body
    if isinstance(case.body, str) and case.media_type != "application/json":
        return case.body.encode()
    return json.dumps(case.body).encode()


@pytest.mark.parametrize("signed", [True, False], ids=["signed", "unsigned"])
def test_schemathesis_cases_from_our_openapi_never_get_a_500(
    app: Flask, redis: Redis, signed: bool
) -> None:
    schema = schemathesis.openapi.from_wsgi("/openapi.json", app)
    client = app.test_client()
    modes = st.sampled_from(list(schemathesis.GenerationMode))
    cases = modes.flatmap(lambda mode: schema.as_strategy(generation_mode=mode))

    @BUDGET
    @given(case=cases)
    def send(case: schemathesis.Case) -> None:
        if not signed:
            case.call_and_validate(checks=[not_a_server_error])
            return
        # Our signature over the exact bytes sent: the generated body gets past the check.
        body = raw_body(case)
        endpoint = case.path.removeprefix("/webhooks/")
        headers = {"Content-Type": "application/json"} | SIGNERS[endpoint](body)
        keys_before = redis.dbsize()
        answer_is_safe(client.post(case.path, data=body, headers=headers), redis, keys_before)

    send()
