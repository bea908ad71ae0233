"""What a Salesforce admin and rep see: signals and outbound messages in, Tasks in the org."""

from __future__ import annotations

import json
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
import responses
import yaml
from redis import Redis

from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from tests.conftest import (
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.contract.salesforce.conftest import API, FIXTURES, Org
from webhooks.app import create_app

ORG_ID = "00Dxx0000001gPLEAY"
DROPPING = [10] * 42 + [4] * 7
ACCOUNT = {
    "attributes": {"type": "Account"},
    "Id": "001xx000003GYk1AAG",
    "Name": "Globex",
    "OwnerId": "005xx000001Sv6AAAS",
    "Website": "globex.example",
    "Product_Account_Id__c": "globex",
}
PRIYA = {
    "attributes": {"type": "Contact"},
    "Id": "003xx000004TmiQAAS",
    "Email": "priya@globex.example",
    "Name": "Priya Natarajan",
    "AccountId": "001xx000003GYk1AAG",
    "Title": "Director of Operations",
    "Champion__c": "true",
}


@pytest.fixture
def org() -> Iterator[Org]:
    from tests.fakes.salesforce_contract import problems

    with responses.RequestsMock(assert_all_requests_are_fired=False) as rsps:
        mocked = Org(rsps)
        mocked.tables = {"Account": [ACCOUNT], "Contact": [PRIYA]}
        rsps.add_callback(responses.PATCH, f"{API}/composite/sobjects", callback=_collection_ok)
        rsps.add_callback(responses.POST, f"{API}/composite/sobjects", callback=_collection_created)
        rsps.add_callback(responses.POST, f"{API}/sobjects/Task", callback=_created("00T"))
        rsps.add_callback(responses.POST, f"{API}/sobjects/Note", callback=_created("002"))
        yield mocked
        assert [p for call in rsps.calls for p in problems(call.request)] == []


def _collection_ok(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    records = json.loads(request.body)["records"]
    return 200, {}, json.dumps([{"id": r["id"], "success": True, "errors": []} for r in records])


PREFIXES = {"Task": "00T", "Note": "002"}
NEW_IDS = iter(range(1, 100_000))


def _collection_created(request: Any, refuse: str | None = None) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    """sObject Collections create: one result per record, in order; `refuse` names an account
    whose records the org refuses, as Salesforce does a bad reference."""
    results = []
    for record in json.loads(request.body)["records"]:
        if refuse is not None and record.get("WhatId", record.get("ParentId")) == refuse:
            error = {
                "statusCode": "INVALID_CROSS_REFERENCE_KEY",
                "message": "invalid cross reference id",
                "fields": ["WhatId"],
            }
            results.append({"success": False, "errors": [error]})
            continue
        prefix = PREFIXES[record["attributes"]["type"]]
        results.append({"id": f"{prefix}xx{next(NEW_IDS):012d}", "success": True, "errors": []})
    return 200, {}, json.dumps(results)


def _created(prefix: str) -> Any:  # noqa: ANN401
    count = iter(range(1, 1000))

    def answer(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
        return (
            201,
            {},
            json.dumps({"id": f"{prefix}xx{next(count):012d}", "success": True, "errors": []}),
        )

    return answer


@pytest.fixture
def running(
    tmp_path: Path, redis_url: str, monkeypatch: pytest.MonkeyPatch, webhook_secrets: dict[str, str]
) -> Iterator[tuple[Context, Any]]:
    monkeypatch.setenv("SALESFORCE_CONSUMER_KEY", "key")
    monkeypatch.setenv("SALESFORCE_CONSUMER_SECRET", "secret")
    monkeypatch.setenv("SF_OUTBOUND_TOKEN", "s3cret-token")
    path = tmp_path / "salesforce.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "crm": {
                    "kind": "salesforce",
                    "salesforce": {
                        "auth": {"flow": "client_credentials", "domain": "acme.my"},
                        "champion_field": "Champion__c",
                        "outbound": {
                            "organization_id": ORG_ID,
                            "token_env": "SF_OUTBOUND_TOKEN",
                            "prior_account_field": "Prior_Account__c",
                        },
                    },
                },
                "account_match": {"crm_field": "Product_Account_Id__c"},
                "fields": {
                    "risk_level": "Churn_Risk_Level__c",
                    "risk_reasons": "Churn_Risk_Reasons__c",
                    "usage_trend_pct": "Usage_Trend_Pct__c",
                    "license_utilization_pct": "License_Utilization_Pct__c",
                    "last_active_date": "Last_Product_Activity__c",
                },
                "webhooks": {
                    "usage": {"secret_env": USAGE_SECRET_ENV},
                    "job_changes": {"secret_env": PEOPLE_SECRET_ENV},
                },
                "evaluation": {
                    "settle_seconds": 0,
                    "interval_seconds": 0,
                    "backfill_quiet_seconds": 0,
                },
            }
        )
    )
    settings = Settings(config=path, redis_url=redis_url)
    context = build_context(settings, read_config(path))
    jobs.install_context(context)
    yield context, create_app(settings, context.config).test_client()
    jobs.install_context(None)
    context.redis.close()


def outbound(contact: dict[str, str], notification_id: str, org_id: str = ORG_ID) -> str:
    sample = (FIXTURES / "outbound_message__contact_two_notifications.xml").read_text()
    head, rest = sample.split("<Notification>", 1)
    head = head.replace("00Dxx0000003kWrEAI", org_id)
    tail = rest[rest.rindex("</Notification>") + len("</Notification>") :]
    fields = "".join(f"<sf:{k}>{v}</sf:{k}>" for k, v in contact.items() if k != "attributes")
    return (
        f"{head}<Notification><Id>{notification_id}</Id>"
        f'<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com">'
        f"{fields}</sObject></Notification>{tail}"
    )


def post_outbound(client: Any, body: str, token: str = "s3cret-token") -> Any:  # noqa: ANN401
    return client.post(
        f"/webhooks/salesforce?token={token}",
        data=body,
        headers={"Content-Type": "text/xml; charset=utf-8", "SOAPAction": '""'},
    )


def test_a_usage_drop_writes_account_fields_in_a_collection_and_one_task(
    org: Org, running: tuple[Context, Any], redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    _, client = running
    post_signed(
        client,
        "/webhooks/usage",
        webhook_secrets[USAGE_SECRET_ENV],
        daily_usage("globex", DROPPING, seats=20),
    )
    usage_complete_through_yesterday(redis)
    drain(redis)
    [collection] = org.sent("PATCH", "/composite/sobjects")
    record = collection["records"][0]
    assert (
        record["id"],
        record["Churn_Risk_Level__c"],
        record["Usage_Trend_Pct__c"],
        record["License_Utilization_Pct__c"],
    ) == ("001xx000003GYk1AAG", "high", -60.0, 50.0)
    [task] = org.created("Task")
    assert task["Subject"] == "Check in with Globex: product usage is down 60%"
    assert (task["WhatId"], task["OwnerId"], task["Priority"], task["Status"]) == (
        "001xx000003GYk1AAG",
        "005xx000001Sv6AAAS",
        "High",
        "Not Started",
    )
    assert task["Description"].startswith("Why: Daily active users fell 60% below")


def test_a_champion_moved_off_the_account_in_salesforce_gets_one_task_acked_once_queued(
    org: Org, running: tuple[Context, Any], redis: Redis
) -> None:
    _, client = running
    first = post_outbound(client, outbound(PRIYA, "04lxx0000000001AAA"))
    assert first.status_code == 200
    assert first.get_data(as_text=True).count("<Ack>true</Ack>") == 1
    moved = PRIYA | {"AccountId": "001xx000009ZZZZAAA", "Title": "VP Operations"}
    post_outbound(client, outbound(moved, "04lxx0000000002AAA"))
    post_outbound(client, outbound(moved, "04lxx0000000002AAA"))  # Salesforce redelivers
    drain(redis)

    [task] = org.created("Task")
    assert task["Subject"] == "Priya Natarajan left Globex: find a new champion"
    assert (task["WhatId"], task["WhoId"]) == ("001xx000003GYk1AAG", "003xx000004TmiQAAS")
    assert len(org.created("Note")) == 1


@pytest.mark.parametrize(
    ("body", "status", "fault"),
    [
        ("<not xml", 400, "not a well-formed XML document"),
        ('<!DOCTYPE x [<!ENTITY a "b">]><x>&a;</x>', 400, "DTDForbidden"),
        (
            "<soapenv:Envelope xmlns:soapenv='http://schemas.xmlsoap.org/soap/envelope/'/>",
            400,
            "expected soapenv:Envelope/soapenv:Body/notifications",
        ),
        (
            outbound(PRIYA, "04lxx0000000003AAA", org_id="00Dxx0000009999AAA"),
            403,
            "OrganizationId 00Dxx0000009999AAA is not the org this endpoint serves",
        ),
    ],
    ids=["malformed", "entity-expansion", "not-an-outbound-message", "other-org"],
)
def test_a_bad_message_gets_a_soap_fault_and_nothing_is_queued(
    org: Org, running: tuple[Context, Any], redis: Redis, body: str, status: int, fault: str
) -> None:
    _, client = running
    answer = post_outbound(client, body)
    assert answer.status_code == status
    text = answer.get_data(as_text=True)
    assert "<soapenv:Fault><faultcode>soapenv:Client</faultcode>" in text
    assert fault in text
    assert redis.keys("rq:job:*") == []


def test_a_wrong_url_token_is_refused(org: Org, running: tuple[Context, Any], redis: Redis) -> None:
    _, client = running
    answer = post_outbound(client, outbound(PRIYA, "04lxx0000000004AAA"), token="guess")
    assert answer.status_code == 401
    assert redis.keys("rq:job:*") == []


ACME = ACCOUNT | {
    "Id": "001xx000003GYk2AAG",
    "Name": "Acme",
    "Website": "acme.example",
    "Product_Account_Id__c": "acme",
}


def test_one_accounts_refused_task_does_not_cost_the_others_theirs(
    org: Org, running: tuple[Context, Any], redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    from rq.registry import FailedJobRegistry

    from integration.store import keys

    org.tables["Account"] = [ACCOUNT, ACME]
    org.rsps.remove(responses.POST, f"{API}/composite/sobjects")
    org.rsps.add_callback(
        responses.POST,
        f"{API}/composite/sobjects",
        callback=lambda request: _collection_created(request, refuse=ACME["Id"]),
    )
    _, client = running
    for account in ("acme", "globex"):
        post_signed(
            client,
            "/webhooks/usage",
            webhook_secrets[USAGE_SECRET_ENV],
            daily_usage(account, DROPPING),
        )
    drain(redis)
    # Both went in one collection; the org refused Acme's and created Globex's.
    collection, alone = org.sent("POST", "/composite/sobjects")
    assert [r["WhatId"] for r in alone["records"]] == [ACME["Id"]]  # its own job, refused again
    assert sorted(r["WhatId"] for r in collection["records"]) == sorted([ACME["Id"], ACCOUNT["Id"]])
    assert collection["allOrNone"] is False
    [globex_run] = [json.loads(raw) for raw in redis.hvals(keys.playbook_runs("globex"))]
    assert globex_run["steps"][0][2] == "ran"
    assert globex_run["tasks"]["rep_task"]
    # Acme's step waits, and its job of its own failed with the org's words, for `retry`.
    [acme_run] = [json.loads(raw) for raw in redis.hvals(keys.playbook_runs("acme"))]
    assert (acme_run["status"], acme_run["next_step"], acme_run["steps"]) == ("active", 0, [])
    [failed] = FailedJobRegistry("evaluate", connection=redis).get_job_ids()
    assert failed.startswith("step-")


def test_past_the_api_budget_field_writes_and_non_urgent_tasks_wait_for_the_reset(
    org: Org, running: tuple[Context, Any], redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    org.limit_info = {"Sforce-Limit-Info": "api-usage=14000/15000"}
    _, client = running
    post_signed(
        client,
        "/webhooks/usage",
        webhook_secrets[USAGE_SECRET_ENV],
        daily_usage("globex", DROPPING),
    )
    usage_complete_through_yesterday(redis)
    drain(redis)
    assert org.sent("PATCH", "/composite/sobjects") == []
    # The usage check-in is not an urgent playbook: it waits too (an urgent one goes out:
    # tests/e2e/test_budget_reserve.py).
    assert org.created("Task") == []

    org.limit_info = {"Sforce-Limit-Info": "api-usage=100/15000"}
    redis.hset("ci:api_budget:salesforce", mapping={"used": 100, "limit": 15000})
    jobs.evaluate_all_accounts()  # the next evaluation writes what was postponed
    [collection] = org.sent("PATCH", "/composite/sobjects")
    assert collection["records"][0]["Churn_Risk_Level__c"] == "high"


def test_the_first_message_about_a_contact_is_enough_with_the_prior_account_field(
    org: Org, running: tuple[Context, Any], redis: Redis
) -> None:
    _, client = running
    moved = PRIYA | {"AccountId": "001xx000009ZZZZAAA", "Prior_Account__c": ACCOUNT["Id"]}
    post_outbound(client, outbound(moved, "04lxx0000000010AAA"))
    drain(redis)
    [task] = org.created("Task")
    assert task["Subject"] == "Priya Natarajan left Globex: find a new champion"


def test_a_notification_without_data_is_listed_and_the_rest_still_acked(
    org: Org, running: tuple[Context, Any], redis: Redis
) -> None:
    _, client = running
    good = outbound(PRIYA, "04lxx0000000011AAA")
    empty = (
        "<Notification><Id>04lxx0000000012AAA</Id>"
        '<sObject xsi:type="sf:Contact" xmlns:sf="urn:sobject.enterprise.soap.sforce.com"/>'
        "</Notification></notifications>"
    )
    answer = post_outbound(client, good.replace("</notifications>", empty))
    assert answer.status_code == 200
    assert "<Ack>true</Ack>" in answer.get_data(as_text=True)
    assert len(redis.keys("rq:job:record-*")) == 1
    assert b"outbound_message:Notification[1] needs an sObject type and an sf:Id" in redis.hkeys(
        "ci:unmatched"
    )


def test_no_ack_until_queued_when_redis_is_down_salesforce_gets_a_fault(
    org: Org, running: tuple[Context, Any], redis_url: str
) -> None:
    from integration.cli.devredis import free_port

    context, _ = running
    down = Settings(config=context.settings.config, redis_url=f"redis://127.0.0.1:{free_port()}/0")
    app = create_app(down, context.config)
    answer = post_outbound(app.test_client(), outbound(PRIYA, "04lxx0000000013AAA"))
    app.extensions["integration.redis"].close()
    assert answer.status_code == 503
    assert "<Ack>" not in answer.get_data(as_text=True)
    assert "signal storage is unavailable" in answer.get_data(as_text=True)
