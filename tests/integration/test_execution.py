"""One task per idempotency key, whatever happens between Redis and the CRM."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta

import pytest
from redis import Redis

from adapters.protocol import CrmContact, TaskRequest
from adapters.sandbox.adapter import SandboxCrm
from integration.errors import CrmFatalError, CrmRetriableError
from integration.jobs.context import Context
from integration.store import keys
from playbooks.actions import CreateNote, CreateTask
from playbooks.execution import CLAIM_LIVE_SECONDS, run_action

NOW = datetime(2026, 11, 23, 10, 0, tzinfo=UTC)
ACTION = CreateTask(
    idempotency_key="usage_drop_checkin:acme:usage_drop:2026-11-23",
    playbook="usage_drop_checkin",
    account_id="acme",
    account_crm_id="1001",
    owner_id="owner-ana",
    subject="Check in with Acme Analytics",
    body="Why: usage fell.",
    due_date=date(2026, 11, 25),
    priority="high",
    task_type="call",
)


class SavesThenTimesOut(SandboxCrm):
    """The CRM stores the task, but the answer never arrives (a read timeout)."""

    def create_task(self, task: TaskRequest) -> str:
        super().create_task(task)
        raise CrmRetriableError(self.name, "create_task", "read timed out", None)


class Refuses(SandboxCrm):
    def create_task(self, task: TaskRequest) -> str:
        raise CrmFatalError(self.name, "create_task", "Property values were not valid", 400)


def sandbox(context: Context) -> SandboxCrm:
    assert isinstance(context.crm, SandboxCrm)
    return context.crm


def test_running_an_action_again_returns_the_first_task(context: Context) -> None:
    first = run_action(context, ACTION, NOW)
    assert run_action(context, ACTION, NOW + timedelta(hours=1)) == first
    assert [task.crm_id for task in sandbox(context).tasks()] == [first]


def test_a_worker_that_finds_a_live_claim_waits_instead_of_creating(
    context: Context, redis: Redis
) -> None:
    redis.set(keys.action_done(ACTION.idempotency_key), f"pending:{NOW.timestamp()}")
    with pytest.raises(CrmRetriableError, match="another worker is running this action"):
        run_action(context, ACTION, NOW + timedelta(seconds=5))
    assert sandbox(context).tasks() == []


def test_a_dead_workers_claim_is_taken_over_and_the_task_created_once(
    context: Context, redis: Redis
) -> None:
    redis.set(keys.action_done(ACTION.idempotency_key), f"pending:{NOW.timestamp()}")
    later = NOW + timedelta(seconds=CLAIM_LIVE_SECONDS + 1)
    crm_id = run_action(context, ACTION, later)
    assert [task.crm_id for task in sandbox(context).tasks()] == [crm_id]


def test_a_task_the_crm_saved_before_timing_out_is_found_not_created_again(
    context: Context,
) -> None:
    flaky = replace(context, crm=SavesThenTimesOut(sandbox(context).path, "product_account_id"))
    with pytest.raises(CrmRetriableError):
        run_action(flaky, ACTION, NOW)
    retried = run_action(context, ACTION, NOW + timedelta(seconds=30))
    assert [task.crm_id for task in sandbox(context).tasks()] == [retried]


def test_a_refused_task_is_created_once_a_fixed_config_lets_it(
    context: Context, redis: Redis
) -> None:
    refusing = replace(context, crm=Refuses(sandbox(context).path, "product_account_id"))
    with pytest.raises(CrmFatalError):
        run_action(refusing, ACTION, NOW)
    assert not sandbox(context).tasks()
    created = run_action(context, ACTION, NOW)
    assert [task.crm_id for task in sandbox(context).tasks()] == [created]
    assert redis.get(keys.action_done(ACTION.idempotency_key)) == created.encode()


class CountsContactLookups(SandboxCrm):
    lookups = 0

    def find_contact(self, email: str) -> CrmContact | None:
        self.lookups += 1
        return super().find_contact(email)


def test_a_reasons_task_and_note_look_the_contact_up_once(context: Context) -> None:
    crm = CountsContactLookups(sandbox(context).path, sandbox(context).match_field)
    counted = replace(context, crm=crm)
    task = replace(ACTION, contact_email="Priya@globex.example")
    note = CreateNote(
        "note:acme",
        "usage_drop_checkin",
        "acme",
        "1001",
        "owner-ana",
        "Why",
        "priya@globex.example",
    )
    run_action(counted, task, NOW)
    run_action(counted, note, NOW)
    assert crm.lookups == 1
    assert [task.contact_id for task in crm.tasks()] == ["2001"]
