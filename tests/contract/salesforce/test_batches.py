"""The Salesforce adapter's collection creates, task completion and people reads."""

from __future__ import annotations

import json
from datetime import UTC, date, datetime
from typing import Any

import requests
import responses

from adapters.protocol import BatchOutcome, CrmContact, CrmUser, NoteRequest, TaskRequest, task_key
from adapters.salesforce.adapter import SalesforceCrm
from tests.contract.salesforce.conftest import API, INSTANCE, Org, Sleeps

COLLECTION = f"{API}/composite/sobjects"


def task(n: int, account: str = "001xx0000000001") -> TaskRequest:
    return TaskRequest(
        subject=f"Check in {n}",
        body="Why: usage fell 46%.",
        due_date=date(2026, 11, 24),
        priority="high",
        task_type="call",
        owner_id="005xx0000001",
        account_crm_id=account,
        contact_crm_id=None,
        idempotency_key=f"usage_drop:acct-{n}:2026-11-23",
    )


def saved(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    """Every record saved, with an id that says which request record it was."""
    records = json.loads(request.body)["records"]
    body = [
        {"id": f"00Txx{r['Subject'].split()[-1]:0>10}", "success": True, "errors": []}
        for r in records
    ]
    return 200, {"Sforce-Limit-Info": "api-usage=20/15000"}, json.dumps(body)


def refused(code: str, message: str) -> dict[str, Any]:
    return {"success": False, "errors": [{"statusCode": code, "message": message, "fields": []}]}


def test_450_tasks_take_three_collection_creates_each_with_its_key(
    org: Org, crm: SalesforceCrm
) -> None:
    org.rsps.add_callback(responses.POST, COLLECTION, callback=saved)

    outcomes = crm.create_tasks([task(n) for n in range(450)])

    sent = org.sent("POST", "/composite/sobjects")
    assert [len(body["records"]) for body in sent] == [200, 200, 50]
    assert all(body["allOrNone"] is False for body in sent)
    assert sent[0]["records"][0] == {
        "attributes": {"type": "Task"},
        "Subject": "Check in 0",
        "Description": "Why: usage fell 46%.",
        "ActivityDate": "2026-11-24",
        "Priority": "High",
        "Status": "Not Started",
        "Type": "Call",
        "WhatId": "001xx0000000001",
        "OwnerId": "005xx0000001",
        "Playbook_Key__c": task_key("usage_drop:acct-0:2026-11-23"),
    }
    assert [o.crm_id for o in outcomes[:2]] == ["00Txx0000000000", "00Txx0000000001"]
    assert outcomes[449] == BatchOutcome("00Txx0000000449")
    assert org.logins == 1


def test_one_refused_task_is_reported_and_a_locked_row_is_sent_once_more(
    org: Org, crm: SalesforceCrm, sleeps: Sleeps
) -> None:
    ok = {"id": "00Txx0000000001", "success": True, "errors": []}
    gone = refused("INVALID_CROSS_REFERENCE_KEY", "invalid cross reference id: 001xx0000000009")
    locked = refused("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    org.json("POST", "composite/sobjects", [ok, gone, locked])
    org.json("POST", "composite/sobjects", [{"id": "00Txx0000000003", "success": True}])

    outcomes = crm.create_tasks([task(1), task(2, "001xx0000000009"), task(3)])

    assert outcomes == [
        BatchOutcome("00Txx0000000001"),
        BatchOutcome(
            None, "INVALID_CROSS_REFERENCE_KEY: invalid cross reference id: 001xx0000000009"
        ),
        BatchOutcome("00Txx0000000003"),
    ]
    resent = org.sent("POST", "/composite/sobjects")[1]["records"]
    assert [r["Subject"] for r in resent] == ["Check in 3"]
    assert sleeps == [2.0]


def test_a_row_still_locked_after_the_second_try_is_worth_a_retry_later(
    org: Org, crm: SalesforceCrm
) -> None:
    locked = refused("UNABLE_TO_LOCK_ROW", "unable to obtain exclusive access to this record")
    org.json("POST", "composite/sobjects", [locked])
    org.json("POST", "composite/sobjects", [locked])
    [outcome] = crm.create_tasks([task(1)])
    assert (outcome.crm_id, outcome.retriable) == (None, True)


def test_notes_are_created_in_one_collection_on_their_account(org: Org, crm: SalesforceCrm) -> None:
    org.json(
        "POST",
        "composite/sobjects",
        [{"id": f"002xx000000000{n}", "success": True, "errors": []} for n in range(2)],
    )
    when = datetime(2026, 11, 23, 9, tzinfo=UTC)
    notes = [
        NoteRequest(f"Champion left ({n}).\nMore.", when, "001xx01", None, "005xx01")
        for n in range(2)
    ]

    outcomes = crm.create_notes(notes)

    [body] = org.sent("POST", "/composite/sobjects")
    assert body["records"][1] == {
        "attributes": {"type": "Note"},
        "ParentId": "001xx01",
        "Title": "Champion left (1).",
        "Body": "Champion left (1).\nMore.",
        "OwnerId": "005xx01",
    }
    assert [o.crm_id for o in outcomes] == ["002xx0000000000", "002xx0000000001"]


def test_a_collection_that_timed_out_is_not_resent_and_the_rest_wait(
    org: Org, crm: SalesforceCrm
) -> None:
    org.rsps.add(responses.POST, COLLECTION, body=requests.ReadTimeout("read timed out"))

    outcomes = crm.create_tasks([task(n) for n in range(250)])

    assert len(outcomes) == 250
    assert all(o.crm_id is None and o.retriable for o in outcomes)
    assert len(org.sent("POST", "/composite/sobjects")) == 1


def test_completing_a_task_sets_status_completed_and_a_deleted_one_is_left_alone(
    org: Org, crm: SalesforceCrm
) -> None:
    org.rsps.add(responses.PATCH, f"{API}/sobjects/Task/00Txx01", status=204)
    not_found = [{"errorCode": "NOT_FOUND", "message": "The requested resource does not exist"}]
    org.json("PATCH", "sobjects/Task/00Txx02", not_found, status=404)

    crm.complete_task("00Txx01")
    crm.complete_task("00Txx02")

    assert org.sent("PATCH", "/sobjects/Task/00Txx01") == [{"Status": "Completed"}]


def test_a_user_comes_with_their_manager(org: Org, crm: SalesforceCrm) -> None:
    org.tables["User"] = [
        {
            "attributes": {"type": "User"},
            "Id": "005xx0000001",
            "Name": "Ana Ortiz",
            "Email": "ana@vendor.example",
            "ManagerId": "005xx0000009",
        }
    ]
    assert crm.user("005xx0000001") == CrmUser(
        "005xx0000001", "Ana Ortiz", "ana@vendor.example", "005xx0000009"
    )
    assert crm.user("005xx0000404") is None
    assert org.soql[0] == ("SELECT Id, Name, Email, ManagerId FROM User WHERE Id = '005xx0000001'")


def contact_row(contact_id: str, name: str, account: str, champion: bool) -> dict[str, Any]:
    return {
        "attributes": {"type": "Contact"},
        "Id": contact_id,
        "Email": f"{name.split()[0].lower()}@globex.example",
        "Name": name,
        "AccountId": account,
        "Title": None,
        "Champion__c": champion,
    }


def test_an_accounts_contacts_come_with_champion_and_primary_in_two_queries(
    org: Org, crm: SalesforceCrm
) -> None:
    globex = "001xx0000000002"
    priya = contact_row("003xx01", "Priya Natarajan", globex, True)
    sam = contact_row("003xx02", "Sam Lee", globex, False)
    # The primary contact role may name someone whose own account is another (a consultant).
    mei = contact_row("003xx03", "Mei Tanaka", "001xx0000000007", False)
    org.tables["Contact"] = [priya, sam, mei]
    org.tables["AccountContactRole"] = [
        {
            "attributes": {"type": "AccountContactRole"},
            "AccountId": globex,
            "ContactId": c["Id"],
            "Contact": c,
        }
        for c in (sam, mei)
    ]

    contacts = crm.account_contacts(globex)

    assert contacts == [
        CrmContact("003xx01", "priya@globex.example", "Priya Natarajan", globex, None, True, False),
        CrmContact("003xx02", "sam@globex.example", "Sam Lee", globex, None, False, True),
        CrmContact(
            "003xx03", "mei@globex.example", "Mei Tanaka", "001xx0000000007", None, False, True
        ),
    ]
    assert org.soql == [
        "SELECT Id, Email, Name, AccountId, Title, Champion__c FROM Contact "
        "WHERE AccountId = '001xx0000000002' ORDER BY CreatedDate",
        "SELECT ContactId, Contact.Id, Contact.Email, Contact.Name, Contact.AccountId, "
        "Contact.Title, Contact.Champion__c FROM AccountContactRole "
        "WHERE AccountId = '001xx0000000002' AND IsPrimary = true",
    ]


def test_the_record_link_is_the_accounts_page_on_the_orgs_host(
    org: Org, crm: SalesforceCrm
) -> None:
    assert crm.record_url("001xx0000000002") == (
        f"{INSTANCE}/lightning/r/Account/001xx0000000002/view"
    )
    assert org.logins == 1
