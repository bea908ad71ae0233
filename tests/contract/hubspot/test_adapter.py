"""The HubSpot adapter against a fake HubSpot that answers like the real API."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from pathlib import Path

import pytest
from redis import Redis

from adapters.hubspot.adapter import HubSpotCrm
from adapters.protocol import (
    FieldUpdate,
    NoteRequest,
    SequenceEnrollment,
    TaskRequest,
    WriteResult,
)
from integration.errors import CrmFeatureUnavailableError, CrmRetriableError
from tests.contract.hubspot.conftest import Sleeps, make_adapter
from tests.fakes.hubspot_server import FakeHubSpot

FIXTURES = Path(__file__).resolve().parents[2] / "fixtures" / "hubspot"


def calls(hub: FakeHubSpot, path_end: str) -> int:
    return sum(1 for r in hub.requests if r.path.endswith(path_end))


def seed_companies(hub: FakeHubSpot, count: int) -> dict[str, str]:
    return {
        f"acct-{n}": hub.add_company(
            {
                "name": f"Company {n}",
                "product_account_id": f"acct-{n}",
                "domain": f"c{n}.example",
                "hubspot_owner_id": "77",
            }
        )
        for n in range(count)
    }


def test_250_accounts_are_found_and_updated_in_three_calls_each(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    ids = seed_companies(hub, 250)
    found = crm.find_accounts(list(ids))
    assert calls(hub, "/companies/batch/read") == 3
    assert {pid: account.crm_id for pid, account in found.items()} == ids
    assert found["acct-7"].owner_id == "77"

    result = crm.write_fields(
        [
            FieldUpdate(
                cid,
                {
                    "churn_risk_level": "high",
                    "usage_trend_pct": -46.0,
                    "last_product_activity_date": None,
                },
            )
            for cid in ids.values()
        ]
    )
    assert calls(hub, "/companies/batch/update") == 3
    assert sorted(result.written) == sorted(ids.values())
    assert hub.companies[ids["acct-7"]]["churn_risk_level"] == "high"
    assert hub.companies[ids["acct-7"]]["usage_trend_pct"] == "-46"
    assert hub.companies[ids["acct-7"]].get("last_product_activity_date", "") == ""  # cleared


def test_a_company_without_an_owner_is_routed_to_the_configured_owner_field(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_adapter(hub, redis, sleeps, owner_property="csm_owner")
    hub.add_company({"name": "Initech", "product_account_id": "initech", "csm_owner": "88"})
    hub.add_company(
        {"name": "Acme", "product_account_id": "acme", "hubspot_owner_id": "77", "csm_owner": "88"}
    )
    found = crm.find_accounts(["initech", "acme"])
    assert (found["initech"].owner_id, found["acme"].owner_id) == ("88", "77")


@pytest.mark.parametrize("missing_mode", ["omit", "207"])
def test_an_unknown_account_is_not_found_whichever_way_hubspot_reports_it(
    hub: FakeHubSpot, crm: HubSpotCrm, missing_mode: str
) -> None:
    hub.batch_read_missing = missing_mode  # type: ignore[assignment]
    seed_companies(hub, 1)
    found = crm.find_accounts(["acct-0", "ghost"])
    assert sorted(found) == ["acct-0"]
    assert calls(hub, "/companies/search") == 1  # the fallback looked by domain too


def test_a_company_without_the_id_property_is_found_by_the_fallback_property(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    company = hub.add_company({"name": "Initech", "domain": "initech.example"})
    found = crm.find_accounts(["initech.example"])
    assert found["initech.example"].crm_id == company


def test_a_partly_failed_batch_update_reports_each_refused_record(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    ids = seed_companies(hub, 2)
    result = crm.write_fields(
        [
            FieldUpdate(ids["acct-0"], {"churn_risk_level": "low"}),
            FieldUpdate("999999", {"churn_risk_level": "low"}),
        ]
    )
    assert result.written == (ids["acct-0"],)
    assert list(result.rejected) == ["999999"]
    assert "OBJECT_NOT_FOUND" in result.rejected["999999"]


def test_a_429_waits_as_long_as_hubspot_asks_then_succeeds(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    ids = seed_companies(hub, 1)
    body = json.loads((FIXTURES / "error_rate_limit__daily.json").read_text())
    body |= {
        "policyName": "TEN_SECONDLY_ROLLING",
        "message": "You have reached your ten_secondly_rolling limit.",
    }
    hub.fail_next("POST", "/batch/update", 429, body, {"Retry-After": "3"})
    result = crm.write_fields([FieldUpdate(ids["acct-0"], {"churn_risk_level": "low"})])
    assert result.written == (ids["acct-0"],)
    assert sleeps == [3.0]
    assert calls(hub, "/companies/batch/update") == 2


def test_a_burst_429_without_retry_after_waits_for_the_rolling_window(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    seed_companies(hub, 1)
    body = {
        "status": "error",
        "message": "You have reached your ten_secondly_rolling limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c1",
        "policyName": "TEN_SECONDLY_ROLLING",
    }
    hub.fail_next(
        "POST", "/batch/read", 429, body, {"X-HubSpot-RateLimit-Interval-Milliseconds": "10000"}
    )
    assert sorted(crm.find_accounts(["acct-0"])) == ["acct-0"]
    assert sleeps == [10.0]


def test_the_daily_limit_is_left_to_rq_instead_of_holding_the_worker(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    body = json.loads((FIXTURES / "error_rate_limit__daily.json").read_text())
    hub.fail_next("POST", "/batch/read", 429, body)
    crm.transport.clock = lambda: datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # reset at midnight
    with pytest.raises(CrmRetriableError) as caught:
        crm.find_accounts(["acct-0"])
    assert caught.value.retry_after_seconds == 3600
    assert sleeps == []


def test_after_the_daily_limit_no_worker_calls_hubspot_until_the_wait_is_over(
    hub: FakeHubSpot, crm: HubSpotCrm, redis: Redis, sleeps: Sleeps
) -> None:
    body = json.loads((FIXTURES / "error_rate_limit__daily.json").read_text())
    hub.fail_next("POST", "/batch/read", 429, body)
    crm.transport.clock = lambda: datetime(2026, 12, 1, 23, 0, tzinfo=UTC)  # reset at midnight
    with pytest.raises(CrmRetriableError):
        crm.find_accounts(["acct-0"])
    another_worker = make_adapter(hub, redis, sleeps)
    with pytest.raises(CrmRetriableError, match="HubSpot calls are paused for") as caught:
        another_worker.write_fields([FieldUpdate("1", {"churn_risk_level": "low"})])
    assert 3590 <= (caught.value.retry_after_seconds or 0) <= 3600
    assert len(hub.requests) == 1


def test_a_5xx_then_success_backs_off_and_succeeds(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    seed_companies(hub, 1)
    hub.fail_next(
        "POST", "/batch/read", 503, {"status": "error", "message": "unavailable"}, times=2
    )
    assert sorted(crm.find_accounts(["acct-0"])) == ["acct-0"]
    assert sleeps == [1.0, 2.0]


def test_a_timeout_is_retried(hub: FakeHubSpot, redis: Redis, sleeps: Sleeps) -> None:
    seed_companies(hub, 1)
    quick = make_adapter(hub, redis, sleeps, request_timeout_seconds=0.2)
    hub.delay_next("/batch/read", 0.6)
    assert sorted(quick.find_accounts(["acct-0"])) == ["acct-0"]
    assert sleeps == [1.0]


def test_a_400_for_one_company_is_its_rejection_with_hubspots_message_and_correlation_id(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    body = json.loads((FIXTURES / "error_validation__unknown_property.json").read_text())
    hub.fail_next("POST", "/batch/update", 400, body)
    result = crm.write_fields([FieldUpdate("1", {"renewal_tier": "gold"})])
    assert result == WriteResult(
        (),
        {
            "1": body["message"]
            + " [VALIDATION_ERROR, correlationId 0e6f3b9a-8c2d-4f1e-a5b7-3d9c1e8f6a20]"
        },
    )
    assert sleeps == []
    assert calls(hub, "/companies/batch/update") == 1


def test_a_task_is_created_with_its_company_and_contact_in_one_call(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    company = hub.add_company({"name": "Globex"})
    contact = hub.add_contact({"email": "priya@globex.example", "firstname": "Priya"})
    task_id = crm.create_task(
        TaskRequest(
            subject="Priya Natarajan left Globex: find a new champion",
            body="Why: Champion Priya left.\nSuggested next step: <call> Ben & Co.",
            due_date=date(2026, 11, 24),
            priority="high",
            task_type="todo",
            owner_id="77",
            account_crm_id=company,
            contact_crm_id=contact,
            idempotency_key="k1",
        )
    )
    [request] = [
        r for r in hub.requests if r.method == "POST" and r.path == "/crm/v3/objects/tasks"
    ]
    assert request.json["properties"] == {
        "hs_timestamp": "2026-11-24T12:00:00Z",
        "hs_task_subject": "Priya Natarajan left Globex: find a new champion",
        "hs_task_body": "Why: Champion Priya left.<br>"
        "Suggested next step: &lt;call&gt; Ben &amp; Co.",
        "hs_task_status": "NOT_STARTED",
        "hs_task_priority": "HIGH",
        "hs_task_type": "TODO",
        "hubspot_owner_id": "77",
        "cs_playbook_key": request.json["properties"]["cs_playbook_key"],
    }
    assert [
        (a["to"]["id"], a["types"][0]["associationTypeId"]) for a in request.json["associations"]
    ] == [(company, 192), (contact, 204)]
    assert crm.find_task("k1") == task_id
    assert crm.find_task("another key") is None


def test_contacts_are_found_by_email_and_unknown_ones_are_none(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    contact = hub.add_contact({"email": "sam@acme.example", "firstname": "Sam", "lastname": "Lee"})
    found = crm.find_contact("SAM@acme.example".lower())
    assert (found.crm_id, found.name) == (contact, "Sam Lee")  # type: ignore[union-attr]
    assert crm.find_contact("nobody@acme.example") is None


def test_a_note_is_logged_on_company_and_contact(hub: FakeHubSpot, crm: HubSpotCrm) -> None:
    company = hub.add_company({"name": "Globex"})
    note_id = crm.create_note(
        NoteRequest("Champion left.", datetime(2026, 11, 23, tzinfo=UTC), company, None, "77")
    )
    assert hub.notes[note_id]["hs_note_body"] == "Champion left."


def test_enrollment_is_sent_as_the_owner(hub: FakeHubSpot, crm: HubSpotCrm) -> None:
    owner = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    contact = hub.add_contact({"email": "priya@globex.example"})
    crm.enroll_in_sequence(SequenceEnrollment(contact, "seq-1", owner["id"]))
    [enrollment] = hub.enrollments
    assert (enrollment["contactId"], enrollment["sequenceId"], enrollment["senderEmail"]) == (
        contact,
        "seq-1",
        "ana@vendor.example",
    )


def test_one_owner_enrolling_many_contacts_is_looked_up_once(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    owner = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    for email in ("priya@globex.example", "sam@globex.example", "li@globex.example"):
        crm.enroll_in_sequence(
            SequenceEnrollment(hub.add_contact({"email": email}), "seq-1", owner["id"])
        )
    owner_reads = [r for r in hub.requests if r.path.startswith("/crm/v3/owners/")]
    assert len(owner_reads) == 1
    assert [e["senderEmail"] for e in hub.enrollments] == ["ana@vendor.example"] * 3


def test_a_portal_without_the_sequences_api_says_so(hub: FakeHubSpot, crm: HubSpotCrm) -> None:
    hub.sequences_access = False
    owner = hub.add_owner("ana@vendor.example")
    contact = hub.add_contact({"email": "priya@globex.example"})
    with pytest.raises(CrmFeatureUnavailableError, match="MISSING_SCOPES"):
        crm.enroll_in_sequence(SequenceEnrollment(contact, "seq-1", owner["id"]))


def test_a_task_create_that_timed_out_is_not_resent_and_a_retry_finds_it(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    import time

    from integration.config.schema import Config
    from integration.config.settings import Settings
    from integration.jobs.context import Context
    from playbooks.actions import CreateTask
    from playbooks.execution import run_action

    crm = make_adapter(hub, redis, sleeps, request_timeout_seconds=0.3)
    company = hub.add_company({"name": "Acme"})
    context = Context(Settings(), Config(), redis, crm, [], queue_redis=redis)
    action = CreateTask(
        "usage_drop_checkin:acme:usage_drop:2026-11-23",
        "usage_drop_checkin",
        "acme",
        company,
        "77",
        "Check in",
        "Why",
        date(2026, 11, 25),
        "high",
        "call",
    )
    hub.delay_next(r"^/crm/v3/objects/tasks$", 0.8)  # HubSpot saves it, but answers too late
    with pytest.raises(CrmRetriableError, match="network error"):
        run_action(context, action, datetime(2026, 11, 23, 10, tzinfo=UTC))
    deadline = time.monotonic() + 5
    while not hub.tasks and time.monotonic() < deadline:  # the fake finishes its slow answer
        time.sleep(0.05)

    retried = run_action(context, action, datetime(2026, 11, 23, 10, 5, tzinfo=UTC))
    assert list(hub.tasks) == [retried]
    assert calls(hub, "/crm/v3/objects/tasks") == 1


def test_any_refusal_of_an_enrollment_gives_the_owner_a_task_instead(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    owner = hub.add_owner("ana@vendor.example")
    contact = hub.add_contact({"email": "priya@globex.example"})
    body = {
        "status": "error",
        "message": "Contact is already enrolled in a sequence",
        "correlationId": "c-2",
        "category": "VALIDATION_ERROR",
    }
    hub.fail_next("POST", "/automation/v4/sequences/enrollments", 400, body)
    with pytest.raises(CrmFeatureUnavailableError, match="already enrolled"):
        crm.enroll_in_sequence(SequenceEnrollment(contact, "seq-1", owner["id"]))


def test_a_redis_failure_in_the_rate_limiter_is_not_taken_for_a_hubspot_error(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps, monkeypatch: pytest.MonkeyPatch
) -> None:
    from redis.exceptions import ConnectionError as RedisConnectionError

    def redis_down() -> float:
        msg = "Connection refused"
        raise RedisConnectionError(msg)

    monkeypatch.setattr(crm.transport._limit, "acquire", redis_down)
    with pytest.raises(RedisConnectionError):
        crm.find_accounts(["acme"])
    assert sleeps == []  # no back-off as if HubSpot were down
    assert hub.requests == []
