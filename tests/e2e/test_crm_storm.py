"""A 429/5xx storm at HubSpot (a loopback fake answering as HubSpot does): one account's failure
never holds back the others, and once the storm ends every owed task exists within two
minutes, each once."""

from __future__ import annotations

import dataclasses
import time
from collections.abc import Iterator
from datetime import UTC, date, datetime
from pathlib import Path
from typing import Any

import pytest
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from integration.errors import CrmRetriableError
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from integration.jobs.evaluate import OTHER_FAILURE_RETRIES
from integration.jobs.queues import CRM_RETRY, QUEUE_NAMES
from playbooks.actions import CreateTask
from playbooks.batches import run_actions
from tests.conftest import (
    CHAMPION_LEFT,
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.e2e.test_hubspot_end_to_end import DROPPING, hubspot_settings, start
from tests.fakes.hubspot_server import FakeHubSpot, rate_limit_body

ACCOUNTS = [f"acct-{n}" for n in range(8)]
SERVER_ERROR = {"status": "error", "message": "internal error", "category": "INTERNAL_ERROR"}
TASK_CREATE = r"^/crm/v3/objects/tasks/batch/create$"
CONTACT_LOOKUP = r"^/crm/v3/objects/contacts/"


@pytest.fixture
def portal(hub: FakeHubSpot) -> dict[str, str]:
    owner = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    companies = {
        account: hub.add_company(
            {
                "name": f"Company {account}",
                "product_account_id": account,
                "domain": f"{account}.example",
                "hubspot_owner_id": owner["id"],
            }
        )
        for account in ACCOUNTS
    }
    return {"owner": owner["id"], **companies}


@pytest.fixture
def running(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Iterator[tuple[Context, Any]]:
    context, client = start(hubspot_settings(tmp_path, hub, redis_url, monkeypatch))
    # HubSpot's waits are passed over, not slept: the storm is counted in answers, not seconds.
    transport = context.crm.transport  # type: ignore[attr-defined]
    transport.waits = dataclasses.replace(transport.waits, sleep=lambda _: None)
    yield context, client
    jobs.install_context(None)
    context.redis.close()


def one_minute(redis: Redis, at: float) -> None:
    """What a minute of the worker's scheduler and `rq cron` does: retries that are due are
    queued, then the sweep and the due playbook steps run."""
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        registry = ScheduledJobRegistry(queue=queue)
        for job_id in registry.get_jobs_to_schedule(int(at)):
            registry.remove(job_id)
            job = queue.fetch_job(job_id)
            if job is not None:
                queue.enqueue_job(job)
    evaluate = Queue("evaluate", connection=redis)
    evaluate.enqueue("integration.jobs.evaluate.sweep_accounts")
    evaluate.enqueue("integration.jobs.steps.run_playbook_steps")
    drain(redis)


def storm_left(hub: FakeHubSpot) -> int:
    with hub._lock:  # noqa: SLF001 - the fake's own failure script, read under its lock
        return sum(script.times for script in hub._failures)  # noqa: SLF001


def test_after_a_storm_of_429s_and_500s_every_owed_task_exists_within_two_minutes_once(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    _, client = running
    secret = webhook_secrets[USAGE_SECRET_ENV]
    # Every CRM call fails while the storm lasts: 20 rate limits, then 8 server errors.
    hub.fail_next("POST", r"^/crm/", 429, rate_limit_body("TEN_SECONDLY_ROLLING"), times=20)
    hub.fail_next("POST", r"^/crm/", 500, SERVER_ERROR, times=8)
    for account in ACCOUNTS:
        events = daily_usage(account, DROPPING, seats=20)
        assert post_signed(client, "/webhooks/usage", secret, events).status_code == 202
    usage_complete_through_yesterday(redis)
    drain(redis)

    started, ended_in, minute = time.time(), None, 0
    while len(hub.tasks) < len(ACCOUNTS) and minute < 20:
        minute += 1
        one_minute(redis, started + minute * 60)
        if ended_in is None and storm_left(hub) == 0:
            ended_in = minute
    assert ended_in is not None, "the storm never ended"
    assert minute - ended_in <= 2, f"tasks {minute - ended_in} minutes after the storm ended"
    owners = sorted(
        a["to"]["id"] for task_id in hub.tasks for a in hub.associations["tasks"][task_id]
    )
    assert owners == sorted(portal[account] for account in ACCOUNTS)  # one task each


def checkin(account: str, crm_id: str, owner: str, email: str) -> CreateTask:
    return CreateTask(
        idempotency_key=f"storm-{account}",
        playbook="usage_drop_checkin",
        account_id=account,
        account_crm_id=crm_id,
        owner_id=owner,
        subject=f"Check in with {account}",
        body="Usage is down.",
        due_date=date(2026, 12, 3),
        priority="high",
        task_type="call",
        contact_email=email,
    )


def test_one_accounts_failed_contact_lookup_costs_the_others_nothing(
    hub: FakeHubSpot, portal: dict[str, str], running: tuple[Context, Any]
) -> None:
    context, _ = running
    for account in ACCOUNTS[:3]:
        hub.add_contact({"email": f"lead@{account}.example", "firstname": account})
    actions = [
        checkin(account, portal[account], portal["owner"], f"lead@{account}.example")
        for account in ACCOUNTS[:3]
    ]
    now = datetime.now(UTC)
    hub.fail_next("GET", CONTACT_LOOKUP, 500, SERVER_ERROR, times=4)  # every try of the first

    first = run_actions(context, actions, now)

    assert sorted(first.done) == ["storm-acct-1", "storm-acct-2"]
    assert isinstance(first.failed["storm-acct-0"], CrmRetriableError)
    assert len(hub.tasks) == 2
    searches_before = sum(r.path.endswith("/tasks/search") for r in hub.requests)
    again = run_actions(context, actions, now)
    assert sorted(again.done) == [f"storm-{account}" for account in ACCOUNTS[:3]]
    assert len(hub.tasks) == 3
    # Nothing was sent for it, so the retry creates it without searching HubSpot for it first.
    assert sum(r.path.endswith("/tasks/search") for r in hub.requests) == searches_before


def test_a_rate_limited_batch_is_retried_without_searching_for_what_it_never_created(
    hub: FakeHubSpot, portal: dict[str, str], running: tuple[Context, Any]
) -> None:
    context, _ = running
    actions = [checkin(account, portal[account], portal["owner"], "") for account in ACCOUNTS]
    now = datetime.now(UTC)
    hub.fail_next("POST", TASK_CREATE, 429, rate_limit_body("TEN_SECONDLY_ROLLING"), times=4)
    failed = run_actions(context, actions, now).failed
    assert len(failed) == len(ACCOUNTS)
    outcomes = run_actions(context, actions, now)
    assert len(outcomes.done) == len(ACCOUNTS)
    assert len(hub.tasks) == len(ACCOUNTS)
    assert not any(r.path.endswith("/tasks/search") for r in hub.requests)
    # ...one batch call, not one call per task.
    assert sum(bool(r.path.endswith("/tasks/batch/create")) for r in hub.requests) == 4 + 1


def test_a_people_signal_in_a_long_outage_is_retried_every_minute_and_lands_once(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    _, client = running
    hub.fail_next("POST", r"^/crm/", 503, SERVER_ERROR, times=10_000)
    hub.fail_next("GET", r"^/crm/", 503, SERVER_ERROR, times=10_000)
    change = {**CHAMPION_LEFT, "previous_company_domain": "acct-3.example"}
    posted = post_signed(
        client, "/webhooks/job-changes", webhook_secrets[PEOPLE_SECRET_ENV], change
    )
    assert posted.status_code == 202
    drain(redis)
    signals = Queue("signals", connection=redis)
    registry = ScheduledJobRegistry(queue=signals)
    for _ in range(8):  # HubSpot down for as long as eight retries take
        [job_id] = registry.get_job_ids()
        wait = registry.get_scheduled_time(job_id).timestamp() - time.time()
        assert wait <= 61, f"the next try waits {wait:.0f}s: too long once HubSpot is back"
        registry.remove(job_id)
        signals.enqueue_job(signals.fetch_job(job_id))
        drain(redis)
    assert hub.tasks == {}
    with hub._lock:  # noqa: SLF001 - HubSpot is back
        hub._failures.clear()  # noqa: SLF001
    [job_id] = registry.get_job_ids()
    registry.remove(job_id)
    signals.enqueue_job(signals.fetch_job(job_id))
    drain(redis)
    [task] = hub.tasks.values()
    assert task["hs_task_subject"].startswith("Priya Natarajan left Company acct-3")


def test_a_job_failing_for_another_reason_than_the_crm_is_tried_only_a_few_more_times(
    running: tuple[Context, Any], redis: Redis
) -> None:
    signals = Queue("signals", connection=redis)
    job = signals.enqueue(
        "integration.jobs.evaluate.process_job_change", {"not": "a job change"}, retry=CRM_RETRY
    )
    drain(redis)
    job.refresh()
    assert job.retries_left is not None
    assert job.retries_left < OTHER_FAILURE_RETRIES  # one of them spent, not a day of them
