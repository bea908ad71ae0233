"""The HubSpot adapter's batch creates, task completion and people reads, against the fake."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from redis import Redis

from adapters.hubspot.adapter import HubSpotCrm
from adapters.protocol import BatchOutcome, CrmContact, CrmUser, NoteRequest, TaskRequest, task_key
from integration.errors import CrmFatalError
from tests.contract.hubspot.conftest import Sleeps, make_adapter
from tests.fakes.hubspot_server import FakeHubSpot

BATCH_CREATE = "/crm/v3/objects/tasks/batch/create"


def sent(hub: FakeHubSpot, path: str) -> list[dict]:
    return [r.json for r in hub.requests if r.method == "POST" and r.path == path]


def task(company: str, n: int, contact: str | None = None) -> TaskRequest:
    return TaskRequest(
        subject=f"Check in {n}",
        body="Why: usage fell 46%.",
        due_date=date(2026, 11, 24),
        priority="high",
        task_type="call",
        owner_id="77",
        account_crm_id=company,
        contact_crm_id=contact,
        idempotency_key=f"usage_drop:acct-{n}:2026-11-23",
    )


def test_250_tasks_take_three_batch_calls_each_with_associations_and_key(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    companies = [hub.add_company({"name": f"Company {n}"}) for n in range(250)]
    contact = hub.add_contact({"email": "priya@globex.example"})
    tasks = [task(c, n, contact if n == 0 else None) for n, c in enumerate(companies)]

    outcomes = crm.create_tasks(tasks)

    bodies = sent(hub, BATCH_CREATE)
    assert [len(body["inputs"]) for body in bodies] == [100, 100, 50]
    assert len(hub.requests) == 3
    first = bodies[0]["inputs"][0]
    assert first["properties"]["cs_playbook_key"] == task_key("usage_drop:acct-0:2026-11-23")
    assert [(a["to"]["id"], a["types"][0]["associationTypeId"]) for a in first["associations"]] == [
        (companies[0], 192),
        (contact, 204),
    ]
    assert all(o.error is None and o.crm_id for o in outcomes)
    # Each outcome is the task made from that request, in request order.
    for n in (0, 99, 100, 249):
        created = hub.tasks[outcomes[n].crm_id]  # type: ignore[index]
        assert created["hs_task_subject"] == f"Check in {n}"
    assert crm.find_task("usage_drop:acct-7:2026-11-23") == outcomes[7].crm_id


def test_one_refused_task_gets_its_own_outcome_and_the_others_are_created(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    hub.strict_associations = True
    acme, globex = hub.add_company({"name": "Acme"}), hub.add_company({"name": "Globex"})
    outcomes = crm.create_tasks([task(acme, 0), task("999999", 1), task(globex, 2)])

    assert [o.crm_id is not None for o in outcomes] == [True, False, True]
    assert outcomes[1] == BatchOutcome(
        None,
        "One or more associations are invalid: 999999 does not exist [VALIDATION_ERROR]",
    )
    assert hub.tasks[outcomes[0].crm_id]["hs_task_subject"] == "Check in 0"  # type: ignore[index]
    assert hub.tasks[outcomes[2].crm_id]["hs_task_subject"] == "Check in 2"  # type: ignore[index]
    assert [r.status for r in hub.requests] == [207]
    assert [i["objectWriteTraceId"] for i in sent(hub, BATCH_CREATE)[0]["inputs"]] == [
        "0",
        "1",
        "2",
    ]


def test_notes_are_created_in_batches_on_their_company_and_contact(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    company = hub.add_company({"name": "Globex"})
    contact = hub.add_contact({"email": "priya@globex.example"})
    when = datetime(2026, 11, 23, 9, tzinfo=UTC)
    notes = [NoteRequest(f"Champion left ({n}).", when, company, contact, "77") for n in range(3)]

    outcomes = crm.create_notes(notes)

    [body] = sent(hub, "/crm/v3/objects/notes/batch/create")
    assert [
        (a["to"]["id"], a["types"][0]["associationTypeId"])
        for a in body["inputs"][0]["associations"]
    ] == [(company, 190), (contact, 202)]
    assert [hub.notes[o.crm_id]["hs_note_body"] for o in outcomes] == [  # type: ignore[index]
        "Champion left (0).",
        "Champion left (1).",
        "Champion left (2).",
    ]


def test_a_batch_that_times_out_is_not_resent_and_later_batches_wait_for_a_retry(
    hub: FakeHubSpot, redis: Redis, sleeps: Sleeps
) -> None:
    crm = make_adapter(hub, redis, sleeps, request_timeout_seconds=0.3)
    company = hub.add_company({"name": "Acme"})
    hub.delay_next("/tasks/batch/create", 0.8)

    outcomes = crm.create_tasks([task(company, n) for n in range(150)])

    assert len(outcomes) == 150
    assert all(o.crm_id is None and o.retriable for o in outcomes)
    assert "network error" in (outcomes[0].error or "")
    assert len(sent(hub, BATCH_CREATE)) == 1  # HubSpot may have saved it: look before resending


def test_a_rate_limited_batch_is_waited_out_and_sent_again(
    hub: FakeHubSpot, crm: HubSpotCrm, sleeps: Sleeps
) -> None:
    company = hub.add_company({"name": "Acme"})
    hub.fail_next("POST", "/tasks/batch/create", 429, headers={"Retry-After": "2"})
    outcomes = crm.create_tasks([task(company, 0)])
    assert outcomes[0].crm_id in hub.tasks
    assert sleeps == [2.0]
    assert len(sent(hub, BATCH_CREATE)) == 2


def test_a_missing_scope_stops_the_whole_run(hub: FakeHubSpot, crm: HubSpotCrm) -> None:
    hub.fail_next("POST", "/tasks/batch/create", 403)
    with pytest.raises(CrmFatalError, match="403"):
        crm.create_tasks([task("1", 0)])


def test_completing_a_task_sets_its_status_and_a_deleted_one_is_left_alone(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    company = hub.add_company({"name": "Acme"})
    task_id = crm.create_task(task(company, 0))
    crm.complete_task(task_id)
    assert hub.tasks[task_id]["hs_task_status"] == "COMPLETED"
    crm.complete_task("424242")  # no error
    patches = [r for r in hub.requests if r.method == "PATCH"]
    assert [(r.path, r.json) for r in patches] == [
        (f"/crm/v3/objects/tasks/{task_id}", {"properties": {"hs_task_status": "COMPLETED"}}),
        ("/crm/v3/objects/tasks/424242", {"properties": {"hs_task_status": "COMPLETED"}}),
    ]


def test_an_owner_is_a_user_without_a_manager(hub: FakeHubSpot, crm: HubSpotCrm) -> None:
    owner = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    assert crm.user(owner["id"]) == CrmUser(owner["id"], "Ana Ortiz", "ana@vendor.example", None)
    assert crm.user("31337") is None
    assert crm.user("005xx0000001") is None  # not a HubSpot owner id: not asked
    assert [r.path for r in hub.requests] == [
        f"/crm/v3/owners/{owner['id']}",
        "/crm/v3/owners/31337",
    ]


def test_a_companys_contacts_come_with_champion_and_the_labelled_primary_in_two_calls(
    hub: FakeHubSpot, crm: HubSpotCrm
) -> None:
    company = hub.add_company({"name": "Globex"})
    other = hub.add_company({"name": "Initech"})
    priya = hub.add_contact(
        {"email": "priya@globex.example", "firstname": "Priya", "lastname": "Natarajan"}
    )
    sam = hub.add_contact(
        {
            "email": "sam@globex.example",
            "firstname": "Sam",
            "hs_buying_role": "BUDGET_HOLDER;CHAMPION",
        }
    )
    li = hub.add_contact({"email": "li@initech.example", "firstname": "Li"})
    # HubSpot's "Primary" (the contact's primary company) is not the account's primary contact.
    hub.associate(company, priya, label="Primary contact", primary=False)
    hub.associate(company, sam)
    hub.associate(other, li)

    contacts = crm.account_contacts(company)

    assert contacts == [
        CrmContact(priya, "priya@globex.example", "Priya Natarajan", company, None, False, True),
        CrmContact(sam, "sam@globex.example", "Sam", company, None, True, False),
    ]
    assert [(r.method, r.path) for r in hub.requests] == [
        ("GET", f"/crm/v4/objects/companies/{company}/associations/contacts"),
        ("POST", "/crm/v3/objects/contacts/batch/read"),
    ]
    assert crm.account_contacts("424242") == []


def test_the_record_link_needs_the_portal_id(
    hub: FakeHubSpot, crm: HubSpotCrm, redis: Redis, sleeps: Sleeps
) -> None:
    assert crm.record_url("1001") is None
    linked = make_adapter(hub, redis, sleeps, portal_id="6798828")
    assert linked.record_url("1001") == "https://app.hubspot.com/contacts/6798828/record/0-2/1001"
    assert hub.requests == []
