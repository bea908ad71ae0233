"""Hostile bodies that must be refused quickly and clearly, and batches that fail part way: what
the CRM created keeps its id and nothing is created twice (real Redis, the loopback fake
HubSpot, Salesforce through `responses`)."""

from __future__ import annotations

import dataclasses
import json
import time
from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from types import SimpleNamespace
from typing import Any

import pytest
import responses
import yaml
from jsonschema import Draft202012Validator

from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, read_config
from integration.store import keys
from playbooks.actions import CreateTask
from playbooks.batches import run_actions
from tests.conftest import nothing_stored
from tests.contract.salesforce.conftest import API, LIMIT_INFO, Org, make_crm
from tests.e2e.test_crm_storm import checkin
from tests.e2e.test_hubspot_end_to_end import hubspot_settings, start
from tests.fakes.hubspot_server import FakeHubSpot
from tests.integration.hostile import ENV, hostile_app, post, valid
from webhooks.app import create_app
from webhooks.openapi import document

TASK_CREATE = r"^/crm/v3/objects/tasks/batch/create$"
HUBSPOT_BATCH = 100


@pytest.fixture
def client(tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    for name, value in ENV.items():
        monkeypatch.setenv(name, value)
    with hostile_app(tmp_path, redis_url) as app:
        yield app.test_client()


# -- item 1: hostile input ------------------------------------------------------------------------


def test_an_unsigned_segment_body_of_escaped_quotes_is_refused_at_once(
    client: Any, redis: Any
) -> None:
    body = b'"' + b'\\"' * 20_000  # 40 KB; Flask takes up to 5 MB, ~4,000x slower again
    started = time.perf_counter()
    answer = post(client, "segment", body, signed=False)
    elapsed = time.perf_counter() - started
    assert answer.status_code in (400, 401)
    assert nothing_stored(redis)
    assert elapsed < 1.0, f"an unsigned 40 KB body took {elapsed:.1f}s to refuse"


@pytest.mark.parametrize("name", ["event", "userId", "messageId"])
def test_a_segment_text_field_longer_than_usage_allows_is_refused_by_name(
    client: Any, redis: Any, name: str
) -> None:
    message = {**valid("segment"), name: "x" * 201}
    answer = post(client, "segment", json.dumps(message).encode())
    assert answer.status_code == 400
    assert answer.json["field"] == name
    assert nothing_stored(redis)


ORG_ID = "00Dxx0000001gPLEAY"
FIXTURES = Path(__file__).resolve().parents[1] / "fixtures" / "salesforce"


@pytest.fixture
def salesforce_client(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, webhook_secrets: dict[str, str]
) -> Iterator[Any]:
    """Salesforce as the CRM, its outbound-message endpoint open (token_env is optional)."""
    monkeypatch.setenv("SALESFORCE_CONSUMER_KEY", "key")
    monkeypatch.setenv("SALESFORCE_CONSUMER_SECRET", "secret")
    crm = {
        "kind": "salesforce",
        "salesforce": {
            "auth": {"flow": "client_credentials", "domain": "acme.my"},
            "outbound": {"organization_id": ORG_ID},
        },
    }
    webhooks = {
        "usage": {"secret_env": "TEST_USAGE_SECRET"},
        "job_changes": {"secret_env": "TEST_PEOPLE_SECRET"},
    }
    path = tmp_path / "salesforce.yaml"
    path.write_text(yaml.safe_dump({"crm": crm, "webhooks": webhooks}))
    app = create_app(Settings(config=path, redis_url=redis_url), read_config(path))
    yield app.test_client()
    app.extensions["integration.redis"].close()


def test_an_outbound_message_in_an_unknown_encoding_is_a_soap_fault(
    salesforce_client: Any, redis: Any
) -> None:
    sample = (FIXTURES / "outbound_message__contact_two_notifications.xml").read_text()
    body = '<?xml version="1.0" encoding="x-no-such"?>' + sample.replace(
        "00Dxx0000003kWrEAI", ORG_ID
    )
    answer = salesforce_client.post(
        "/webhooks/salesforce", data=body.encode(), headers={"Content-Type": "text/xml"}
    )
    assert answer.status_code == 400, answer.status_code
    assert "<faultstring>" in answer.get_data(as_text=True)
    assert nothing_stored(redis)


def _request_schema(path: str) -> Draft202012Validator:
    doc = document()
    body = doc["paths"][path]["post"]["requestBody"]["content"]["application/json"]["schema"]
    return Draft202012Validator({**body, "components": doc["components"]})


def test_openapi_accepts_a_segment_batch_envelope_the_endpoint_accepts(client: Any) -> None:
    envelope = {"batch": [valid("segment", 1), valid("segment", 2)], "context": {"ip": "1.2.3.4"}}
    answer = post(client, "segment", json.dumps(envelope).encode())
    assert answer.status_code == 202, answer.get_data(as_text=True)
    served = client.get("/openapi.json").json
    assert served == json.loads(json.dumps(document()))
    errors = [e.message for e in _request_schema("/webhooks/segment").iter_errors(envelope)]
    assert errors == []


# -- item 4: CRM failures -------------------------------------------------------------------------


@pytest.fixture
def running(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Iterator[Context]:
    context, _ = start(hubspot_settings(tmp_path, hub, redis_url, monkeypatch))
    transport = context.crm.transport  # type: ignore[attr-defined]
    transport.waits = dataclasses.replace(transport.waits, sleep=lambda _: None)
    yield context
    jobs.install_context(None)
    context.redis.close()


def _owed_tasks(hub: FakeHubSpot, count: int) -> list[CreateTask]:
    """`count` tasks for as many accounts, spread over owners so no cap holds one."""
    owners = [hub.add_owner(f"rep{n}@vendor.example")["id"] for n in range(count // 5 + 1)]
    return [
        checkin(f"acct-{n}", hub.add_company({"name": f"Company {n}"}), owners[n // 5], "")
        for n in range(count)
    ]


def test_a_refusal_of_a_later_chunk_never_makes_the_retry_create_the_first_chunk_twice(
    hub: FakeHubSpot, running: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _owed_tasks(hub, HUBSPOT_BATCH + 1)  # two batch calls: 100, then 1
    crm = running.crm
    create_batch = crm._create_batch  # noqa: SLF001 - the adapter's own batch call, observed
    sent = []

    def first_chunk_then_token_revoked(*args: Any) -> Any:  # noqa: ANN401 - passes through
        answer = create_batch(*args)
        sent.append(len(answer))
        if len(sent) == 1:  # the token is revoked while the first chunk is answered
            hub.fail_next("POST", TASK_CREATE, 401)
        return answer

    monkeypatch.setattr(crm, "_create_batch", first_chunk_then_token_revoked)
    now = datetime.now(UTC)

    first = run_actions(running, tasks, now)
    assert len(hub.tasks) == HUBSPOT_BATCH  # the first chunk was created...
    assert len(first.done) == HUBSPOT_BATCH  # ...and keeps its ids
    assert len(first.failed) == len(tasks) - HUBSPOT_BATCH  # the rest was refused, unsent

    again = run_actions(running, tasks, now)  # the token is good again
    assert len(again.done) == len(tasks)
    assert len(hub.tasks) == len(tasks), f"{len(hub.tasks)} tasks for {len(tasks)} owed"


def test_a_refusal_met_while_splitting_keeps_the_tasks_already_created(
    hub: FakeHubSpot, running: Context, monkeypatch: pytest.MonkeyPatch
) -> None:
    tasks = _owed_tasks(hub, 10)
    crm = running.crm
    create_batch = crm._create_batch  # noqa: SLF001 - the adapter's own batch call, observed
    calls = []

    def split_then_conflict(*args: Any) -> Any:  # noqa: ANN401 - passes through
        calls.append(len(args[1]))
        answer = create_batch(*args)
        if len(calls) == 2:  # the first half went through; the second half meets a 409
            hub.fail_next("POST", TASK_CREATE, 409)
        return answer

    monkeypatch.setattr(crm, "_create_batch", split_then_conflict)
    hub.fail_next("POST", TASK_CREATE, 400)  # the whole batch refused, naming no property
    now = datetime.now(UTC)

    first = run_actions(running, tasks, now)
    assert calls == [10, 5, 5]
    assert len(hub.tasks) == 5  # the first half was created
    created = sorted(first.done)
    assert len(created) == 5, f"reported {len(first.failed)} failed, 0 done"
    run_actions(running, tasks, now)
    assert len(hub.tasks) == len(tasks), f"{len(hub.tasks)} tasks for {len(tasks)} owed"


LOCKED_ROW = {"message": "unable to obtain exclusive access", "errorCode": "UNABLE_TO_LOCK_ROW"}
CONCURRENCY = {
    "message": "ConcurrentPerOrgLongTxn Limit exceeded",
    "errorCode": "REQUEST_LIMIT_EXCEEDED",
}


def test_a_rate_limit_on_the_locked_row_resend_never_doubles_the_tasks_already_created(
    tmp_path: Path, redis: Any, monkeypatch: pytest.MonkeyPatch, webhook_secrets: dict[str, str]
) -> None:
    for name, value in {
        "SALESFORCE_CONSUMER_KEY": "key",
        "SALESFORCE_CONSUMER_SECRET": "s",
    }.items():
        monkeypatch.setenv(name, value)
    crm = {
        "kind": "salesforce",
        "salesforce": {"auth": {"flow": "client_credentials", "domain": "acme.my"}},
    }
    webhooks = {
        "usage": {"secret_env": "TEST_USAGE_SECRET"},
        "job_changes": {"secret_env": "TEST_PEOPLE_SECRET"},
    }
    path = tmp_path / "salesforce.yaml"
    path.write_text(yaml.safe_dump({"crm": crm, "webhooks": webhooks}))
    created: dict[str, int] = {}
    calls = []

    def collection(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
        records = json.loads(request.body)["records"]
        calls.append(len(records))
        if len(calls) == 2:  # the locked row sent again meets the concurrency limit
            return 403, LIMIT_INFO, json.dumps([CONCURRENCY])
        answers = []
        for n, record in enumerate(records):
            if len(calls) == 1 and n == len(records) - 1:
                answers.append({"success": False, "errors": [LOCKED_ROW]})
                continue
            key = record["Playbook_Key__c"]
            created[key] = created.get(key, 0) + 1
            answers.append({"id": f"00Txx{len(created):013d}", "success": True, "errors": []})
        return 200, LIMIT_INFO, json.dumps(answers)

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        Org(rsps)
        rsps.add_callback(responses.POST, f"{API}/composite/sobjects", callback=collection)
        context = SimpleNamespace(
            redis=redis,
            crm=make_crm(redis, lambda _: None, task_key_field="Playbook_Key__c"),
            config=read_config(path),
            slack=None,
            email=None,
        )
        tasks = [checkin(f"acct-{n}", f"001xx{n:013d}", "005xx0000001", "") for n in range(3)]
        now = datetime.now(UTC)
        first = run_actions(context, tasks, now)
        assert calls == [3, 1]
        assert len(first.done) == 2  # created by the first call
        assert len(first.failed) == 1  # the locked row, rate-limited on its second send
        redis.delete(keys.crm_paused("salesforce"))  # the concurrency wait is over
        again = run_actions(context, tasks, now)
        assert len(again.done) == 3
    assert created == dict.fromkeys(created, 1), f"created per key: {created}"
