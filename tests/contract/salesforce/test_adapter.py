"""The Salesforce adapter against `responses` shaped like the REST API."""

from __future__ import annotations

from datetime import date

import pytest
import responses
from redis import Redis

from adapters.protocol import FieldUpdate, OwnerNotification, SequenceEnrollment, TaskRequest
from adapters.salesforce.adapter import SalesforceCrm
from integration.errors import CrmFatalError, CrmFeatureUnavailableError, CrmRetriableError
from tests.contract.salesforce.conftest import API, Org, Sleeps, fixture, make_crm


def accounts(count: int) -> list[dict[str, str]]:
    return [
        {
            "attributes": {"type": "Account"},
            "Id": f"001xx{n:013d}",
            "Name": f"Company {n}",
            "OwnerId": "005xx0000001",
            "Website": f"c{n}.example",
            "Product_Account_Id__c": f"acct-{n}",
        }
        for n in range(count)
    ]


def collection_ok(request: object) -> tuple[int, dict[str, str], str]:
    import json

    records = json.loads(request.body)["records"]  # type: ignore[attr-defined]
    body = [{"id": r["id"], "success": True, "errors": []} for r in records]
    return 200, {"Sforce-Limit-Info": "api-usage=20/15000"}, json.dumps(body)


def test_450_accounts_are_written_in_three_collection_calls(org: Org, crm: SalesforceCrm) -> None:
    org.rsps.add_callback(responses.PATCH, f"{API}/composite/sobjects", callback=collection_ok)
    updates = [
        FieldUpdate(f"001xx{n:013d}", {"Churn_Risk_Level__c": "high", "Usage_Trend_Pct__c": -46.0})
        for n in range(450)
    ]
    result = crm.write_fields(updates)
    sent = org.sent("PATCH", "/composite/sobjects")
    assert [len(body["records"]) for body in sent] == [200, 200, 50]
    assert all(body["allOrNone"] is False for body in sent)
    assert sent[0]["records"][0] == {
        "attributes": {"type": "Account"},
        "id": "001xx0000000000000",
        "Churn_Risk_Level__c": "high",
        "Usage_Trend_Pct__c": -46.0,
    }
    assert len(result.written) == 450


def test_a_partial_failure_reports_the_refused_record_and_retries_only_a_locked_row(
    org: Org, crm: SalesforceCrm, sleeps: Sleeps
) -> None:
    mixed = fixture("collections_update_response__one_refused.json")
    locked = {
        "success": False,
        "errors": [
            {
                "statusCode": "UNABLE_TO_LOCK_ROW",
                "message": "unable to obtain exclusive access",
                "fields": [],
            }
        ],
    }
    org.json("PATCH", "composite/sobjects", [*mixed, locked])
    org.json(
        "PATCH", "composite/sobjects", [{"id": "001xx0000000003", "success": True, "errors": []}]
    )
    updates = [
        FieldUpdate(f"001xx000000000{n}", {"Churn_Risk_Level__c": "low"}) for n in range(1, 4)
    ]
    result = crm.write_fields(updates)
    assert result.written == ("001xx0000000001", "001xx0000000003")
    assert list(result.rejected) == ["001xx0000000002"]
    assert result.rejected["001xx0000000002"].startswith("MALFORMED_ID:")
    assert [len(body["records"]) for body in org.sent("PATCH", "/composite/sobjects")] == [3, 1]
    assert sleeps == [2.0]


def test_accounts_are_found_by_the_external_id_with_escaped_soql(
    org: Org, crm: SalesforceCrm
) -> None:
    org.tables["Account"] = accounts(3)
    found = crm.find_accounts(["acct-1", "acct-2", "x' OR Name != '"])
    assert sorted(found) == ["acct-1", "acct-2"]
    assert org.soql[-1] == (
        "SELECT Id, Name, OwnerId, Website, Product_Account_Id__c FROM Account "
        "WHERE Product_Account_Id__c IN ('acct-1','acct-2','x\\' OR Name != \\'')"
    )


def test_contacts_are_found_by_email_without_soql_injection(org: Org, crm: SalesforceCrm) -> None:
    org.tables["Contact"] = fixture("contact_query_response__by_email.json")["records"]
    email = org.tables["Contact"][0]["Email"]
    contact = crm.find_contact(email)
    assert contact is not None
    assert contact.crm_id == org.tables["Contact"][0]["Id"]
    assert crm.find_contact("a@b.example' OR Email != '") is None
    assert org.soql[-1].endswith(
        "WHERE Email = 'a@b.example\\' OR Email != \\'' ORDER BY LastModifiedDate DESC LIMIT 1"
    )


def test_a_task_carries_subject_description_date_priority_owner_what_and_who(
    org: Org, crm: SalesforceCrm
) -> None:
    org.json(
        "POST", "sobjects/Task", {"id": "00Txx0000001", "success": True, "errors": []}, status=201
    )
    task_id = crm.create_task(
        TaskRequest(
            subject="Priya Natarajan left Globex: find a new champion",
            body="Why: she left.",
            due_date=date(2026, 11, 24),
            priority="high",
            task_type="todo",
            owner_id="005xx01",
            account_crm_id="001xx01",
            contact_crm_id="003xx01",
            idempotency_key="k1",
        )
    )
    [sent] = org.sent("POST", "/sobjects/Task")
    assert sent == {
        "Subject": "Priya Natarajan left Globex: find a new champion",
        "Description": "Why: she left.",
        "ActivityDate": "2026-11-24",
        "Priority": "High",
        "Status": "Not Started",
        "Type": "Other",
        "WhatId": "001xx01",
        "OwnerId": "005xx01",
        "WhoId": "003xx01",
        "Playbook_Key__c": sent["Playbook_Key__c"],
    }
    assert task_id == "00Txx0000001"


def test_an_expired_session_is_renewed_once_and_the_call_retried(
    org: Org, crm: SalesforceCrm
) -> None:
    org.json("POST", "sobjects/Task", fixture("error_invalid_session_id.json"), status=401)
    org.json(
        "POST", "sobjects/Task", {"id": "00Txx0000002", "success": True, "errors": []}, status=201
    )
    task = TaskRequest("s", "b", date(2026, 11, 24), "low", "call", None, "001xx01")
    assert crm.create_task(task) == "00Txx0000002"
    assert org.logins == 2


def test_request_limit_exceeded_backs_off_for_every_worker(
    org: Org, crm: SalesforceCrm, redis: Redis, sleeps: Sleeps
) -> None:
    org.json("POST", "sobjects/Task", fixture("error_request_limit_exceeded.json"), status=403)
    task = TaskRequest("s", "b", date(2026, 11, 24), "low", "call", None, "001xx01")
    with pytest.raises(CrmRetriableError, match="REQUEST_LIMIT_EXCEEDED"):
        crm.create_task(task)
    calls_before = len(org.rsps.calls)
    other_worker = make_crm(redis, sleeps)
    with pytest.raises(CrmRetriableError, match="Salesforce calls are paused"):
        other_worker.find_accounts(["acct-1"])
    assert len(org.rsps.calls) == calls_before
    assert sleeps == []


def test_field_writes_stop_at_the_configured_share_of_the_daily_allocation(
    org: Org, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_crm(redis, sleeps, api_budget_share=0.5)
    org.tables["Account"] = accounts(1)
    org.rsps.add(
        responses.GET,
        f"{API}/sobjects",
        json={},
        headers={"Sforce-Limit-Info": "api-usage=9000/15000"},
    )
    crm._call("describe_global", lambda sf: sf.restful("sobjects"))  # noqa: SLF001 - any call
    assert crm.transport.api_usage() == (9000, 15000)
    with pytest.raises(CrmRetriableError, match="9000 of the org's 15000 daily API requests"):
        crm.write_fields([FieldUpdate("001xx01", {"Churn_Risk_Level__c": "high"})])
    org.json("POST", "sobjects/Task", {"id": "00Txx3", "success": True, "errors": []}, 201)
    task = TaskRequest("s", "b", date(2026, 11, 24), "low", "call", None, "001xx01")
    assert crm.create_task(task) == "00Txx3"  # urgent work still goes through


def test_other_errors_are_fatal_with_salesforces_error_code(org: Org, crm: SalesforceCrm) -> None:
    org.json(
        "POST",
        "sobjects/Task",
        [
            {
                "message": "Assigned To ID: owner cannot be inactive",
                "errorCode": "INACTIVE_OWNER_OR_USER",
                "fields": [],
            }
        ],
        400,
    )
    task = TaskRequest("s", "b", date(2026, 11, 24), "low", "call", "005xx9", "001xx01")
    with pytest.raises(CrmFatalError) as caught:
        crm.create_task(task)
    assert str(caught.value) == (
        "salesforce create_task failed (400): INACTIVE_OWNER_OR_USER: "
        "Assigned To ID: owner cannot be inactive"
    )


def test_a_custom_notification_goes_to_the_owner_with_the_org_type_id(
    org: Org, crm: SalesforceCrm
) -> None:
    org.tables["CustomNotificationType"] = [
        {"Id": "0MLxx0000001", "DeveloperName": "Churn_Risk_Alert"}
    ]
    org.json(
        "POST",
        "actions/standard/customNotificationAction",
        fixture("custom_notification_action_response.json"),
    )
    crm.notify_owner(OwnerNotification("005xx01", "Check in with Acme", "Usage fell.", "001xx01"))
    [sent] = org.sent("POST", "/customNotificationAction")
    assert sent == {
        "inputs": [
            {
                "customNotifTypeId": "0MLxx0000001",
                "recipientIds": ["005xx01"],
                "title": "Check in with Acme",
                "body": "Usage fell.",
                "targetId": "001xx01",
            }
        ]
    }


def test_an_org_without_sales_engagement_says_so(org: Org, crm: SalesforceCrm) -> None:
    org.json(
        "POST",
        "actions/standard/assignTargetToSalesCadence",
        [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}],
        404,
    )
    with pytest.raises(CrmFeatureUnavailableError, match="Sales Engagement cadences"):
        crm.enroll_in_sequence(SequenceEnrollment("003xx01", "77Cxx01", "005xx01"))


def test_cadence_enrollment_sends_the_documented_inputs(org: Org, crm: SalesforceCrm) -> None:
    org.json(
        "POST",
        "actions/standard/assignTargetToSalesCadence",
        [
            {
                "actionName": "assignTargetToSalesCadence",
                "errors": None,
                "isSuccess": True,
                "outputValues": None,
            }
        ],
    )
    crm.enroll_in_sequence(SequenceEnrollment("003xx01", "77Cxx01", "005xx01"))
    [sent] = org.sent("POST", "/assignTargetToSalesCadence")
    documented = fixture("assign_target_to_sales_cadence_request.json")["inputs"][0]
    assert set(documented) <= set(sent["inputs"][0])  # userId is the documented optional input
    assert sent["inputs"][0] == {
        "salesCadenceNameOrId": "77Cxx01",
        "targetId": "003xx01",
        "userId": "005xx01",
    }


def test_a_task_create_that_timed_out_is_not_resent_and_a_retry_finds_it(
    org: Org, crm: SalesforceCrm, redis: Redis
) -> None:
    from datetime import UTC, datetime

    import requests

    from adapters.protocol import task_key
    from integration.config.schema import Config
    from integration.config.settings import Settings
    from integration.jobs.context import Context
    from playbooks.actions import CreateTask
    from playbooks.execution import run_action

    org.rsps.add(
        responses.POST, f"{API}/sobjects/Task", body=requests.ReadTimeout("read timed out")
    )
    context = Context(Settings(), Config(), redis, crm, [], queue_redis=redis)
    action = CreateTask(
        "usage_drop_checkin:acme:usage_drop:2026-11-23",
        "usage_drop_checkin",
        "acme",
        "001xx01",
        "005xx01",
        "Check in",
        "Why",
        date(2026, 11, 25),
        "high",
        "call",
    )
    with pytest.raises(CrmRetriableError, match="network error"):
        run_action(context, action, datetime(2026, 11, 23, 10, tzinfo=UTC))
    assert len(org.sent("POST", "/sobjects/Task")) == 1

    # Salesforce had saved it: the retry finds it by its key and sends nothing more.
    org.tables["Task"] = [
        {
            "attributes": {"type": "Task"},
            "Id": "00Txx0000009",
            "Playbook_Key__c": task_key(action.idempotency_key),
        }
    ]
    assert run_action(context, action, datetime(2026, 11, 23, 10, 5, tzinfo=UTC)) == "00Txx0000009"
    assert len(org.sent("POST", "/sobjects/Task")) == 1


def test_a_domain_finds_only_the_account_whose_website_is_that_domain(
    org: Org, crm: SalesforceCrm
) -> None:
    rows = accounts(3)
    rows[0]["Website"] = "https://www.bigacme.example"
    rows[1]["Website"] = "acme.example.au"
    rows[2]["Website"] = "https://www.Acme.example/about"
    org.tables["Account"] = rows
    found = crm.find_account_by_domain("acme.example")
    assert found is not None
    assert found.crm_id == rows[2]["Id"]
    assert crm.find_account_by_domain("cme.example") is None
