"""The sandbox CRM keeps the protocol's promises: batches, completion, people, links."""

from __future__ import annotations

import sqlite3
from datetime import UTC, date, datetime
from pathlib import Path

import pytest

from adapters.protocol import BatchOutcome, CrmContact, CrmUser, NoteRequest, TaskRequest
from adapters.sandbox.adapter import SandboxCrm

SEED = {
    "owners": [
        {
            "id": "owner-ana",
            "name": "Ana Ortiz",
            "email": "ana@vendor.example",
            "manager_id": "owner-mo",
        },
        {"id": "owner-mo", "name": "Mo Reyes", "email": "mo@vendor.example"},
    ],
    "companies": [{"id": "1002", "name": "Globex", "owner_id": "owner-ana"}],
    "contacts": [
        {
            "id": "2001",
            "email": "priya@globex.example",
            "name": "Priya",
            "company_id": "1002",
            "is_champion": True,
        },
        {
            "id": "2002",
            "email": "sam@globex.example",
            "name": "Sam",
            "company_id": "1002",
            "is_primary": True,
        },
        {"id": "2003", "email": "li@initech.example", "name": "Li", "company_id": "1003"},
    ],
}


@pytest.fixture
def crm(tmp_path: Path) -> SandboxCrm:
    sandbox = SandboxCrm.open(tmp_path / "crm.sqlite3", "product_account_id")
    sandbox.seed(SEED)
    return sandbox


def task(company: str, n: int) -> TaskRequest:
    return TaskRequest(
        f"Check in {n}",
        "Why",
        date(2026, 11, 24),
        "high",
        "call",
        "owner-ana",
        company,
        None,
        f"k{n}",
    )


def test_a_batch_creates_each_task_and_refuses_one_for_a_missing_company(crm: SandboxCrm) -> None:
    outcomes = crm.create_tasks([task("1002", 0), task("9999", 1), task("1002", 2)])
    assert outcomes[1] == BatchOutcome(None, "no company with id '9999'")
    assert [t.crm_id for t in crm.tasks()] == [outcomes[0].crm_id, outcomes[2].crm_id]
    assert crm.find_task("k2") == outcomes[2].crm_id


def test_notes_are_created_in_a_batch(crm: SandboxCrm) -> None:
    when = datetime(2026, 11, 23, tzinfo=UTC)
    outcomes = crm.create_notes([NoteRequest("a", when, "1002"), NoteRequest("b", when, "1003")])
    assert outcomes[0].crm_id is not None
    assert outcomes[1] == BatchOutcome(None, "no company with id '1003'")


def test_a_completed_task_reads_as_completed(crm: SandboxCrm) -> None:
    task_id = crm.create_task(task("1002", 0))
    crm.complete_task(task_id)
    crm.complete_task("unknown")
    assert [t.status for t in crm.tasks()] == ["COMPLETED"]


def test_users_carry_their_manager_and_contacts_their_roles(crm: SandboxCrm) -> None:
    assert crm.user("owner-ana") == CrmUser(
        "owner-ana", "Ana Ortiz", "ana@vendor.example", "owner-mo"
    )
    assert crm.user("owner-mo") == CrmUser("owner-mo", "Mo Reyes", "mo@vendor.example", None)
    assert crm.user("nobody") is None
    assert crm.account_contacts("1002") == [
        CrmContact("2001", "priya@globex.example", "Priya", "1002", None, True, False),
        CrmContact("2002", "sam@globex.example", "Sam", "1002", None, False, True),
    ]
    assert crm.record_url("1002") == "sandbox://company/1002"


def test_a_file_from_an_older_release_gains_the_new_columns(tmp_path: Path) -> None:
    path = tmp_path / "old.sqlite3"
    with sqlite3.connect(path) as db:
        db.executescript(
            "create table owners (id text primary key, name text not null, email text);"
            "insert into owners values ('owner-ana', 'Ana Ortiz', 'ana@vendor.example');"
            "create table contacts (id text primary key, email text not null unique, "
            "name text not null, company_id text, title text, "
            "is_champion integer not null default 0);"
            "insert into contacts values ('2001', 'priya@globex.example', 'Priya', '1002', "
            "null, 1);"
        )
    db.close()
    crm = SandboxCrm.open(path, "product_account_id")
    assert crm.user("owner-ana") == CrmUser("owner-ana", "Ana Ortiz", "ana@vendor.example", None)
    [priya] = crm.account_contacts("1002")
    assert (priya.is_champion, priya.is_primary) == (True, False)
