"""CRM calls per 1,000 playbook tasks when a daily sweep flags many accounts at once.

    python -m bench.playbook_batches [--accounts 10000]

Every flagged account gets one task, as the sweep's playbooks plan them, run through the
service's own execution path (playbooks.batches.run_actions: the idempotency claims in Redis,
the caps, then `create_tasks`: HubSpot batch create, 100 a call; Salesforce sObject
Collections, 200 a call) and, as the baseline in the same run, through `run_action` one task at
a time (one `create_task` each, as before batching).
HubSpot is the fake on loopback (tests/fakes/hubspot_server.py), Salesforce is mocked with
`responses`; both count every HTTP call the adapter makes. Targets: 10 calls per 1,000 tasks on
HubSpot, 5 on Salesforce. Uses the Redis at REDIS_URL (an empty database) or a private one.
"""

from __future__ import annotations

import argparse
import json
import os
import platform
import time
from collections.abc import Callable, Sequence
from contextlib import ExitStack
from dataclasses import dataclass
from datetime import UTC, date, datetime
from itertools import count
from typing import Any

import responses
from redis import Redis

from adapters.hubspot.adapter import HubSpotCrm
from adapters.hubspot.auth import PrivateAppToken
from adapters.protocol import CrmAdapter, TaskRequest
from adapters.salesforce.adapter import SalesforceCrm
from adapters.salesforce.login import login_with
from integration.cli.devredis import dev_database
from integration.config.playbooks import Caps, Work
from integration.config.schema import Config, HubSpotRateLimit, SalesforceAuth
from integration.config.schema import HubSpotCrm as HubSpotSettings
from integration.config.schema import SalesforceCrm as SalesforceSettings
from integration.config.settings import Settings
from playbooks.actions import CreateTask
from playbooks.batches import run_actions
from playbooks.execution import run_action
from tests.fakes.hubspot_server import FakeHubSpot

INSTANCE = "https://bench.my.salesforce.com"
API = f"{INSTANCE}/services/data/v62.0"
WARM_UP_TASKS = 10
DUE = date(2026, 11, 24)


def sweep(companies: Sequence[str], contacts: Sequence[str], label: str) -> list[TaskRequest]:
    """One task per flagged account, as the daily sweep's playbooks ask for them."""
    return [
        TaskRequest(
            subject=f"Usage fell 46% at account {n}: check in",
            body="Why: weekly active users fell 46% against the 8-week baseline.",
            due_date=DUE,
            priority="high",
            task_type="call",
            owner_id="77",
            account_crm_id=company,
            contact_crm_id=contacts[n % len(contacts)] if n % 4 == 0 else None,
            idempotency_key=f"{label}:usage_drop:acct-{n}:2026-11-23",
        )
        for n, company in enumerate(companies)
    ]


def timed(run: Callable[[], object]) -> float:
    started = time.perf_counter()
    run()
    return time.perf_counter() - started


@dataclass(frozen=True)
class BenchContext:
    """What playbooks.execution needs: Redis, the CRM, a config whose caps let a sweep through."""

    redis: Redis
    crm: CrmAdapter
    config: Config = Config(work=Work(caps=Caps(tasks_per_assignee_per_day=1000)))
    slack: None = None
    email: None = None


def planned(tasks: Sequence[TaskRequest], label: str) -> list[CreateTask]:
    """The tasks as the engine plans them (usage reasons: no contact to look up)."""
    return [
        CreateTask(
            idempotency_key=f"{label}:{task.idempotency_key}",
            playbook="usage_drop_checkin",
            account_id=f"{label}-acct-{n}",
            account_crm_id=task.account_crm_id,
            owner_id=f"{70 + n % 100}",
            subject=task.subject,
            body=task.body,
            due_date=task.due_date,
            priority=task.priority,
            task_type=task.task_type,
        )
        for n, task in enumerate(tasks)
    ]


def compare(
    crm: CrmAdapter, tasks: Sequence[TaskRequest], calls: Callable[[], int], redis: Redis
) -> tuple[int, float, int, float, int]:
    """(batched calls, seconds, one-by-one calls, seconds, tasks created batched)."""
    context = BenchContext(redis, crm)
    now = datetime.now(UTC)
    run_actions(context, planned(tasks[:WARM_UP_TASKS], "warm"), now)  # log in, fill pools
    before = calls()
    done: dict[str, str] = {}
    batched_s = timed(
        lambda: done.update(run_actions(context, planned(tasks, "batched"), now).done)
    )
    batched = calls() - before
    one_by_one = planned(tasks, "single")
    before = calls()
    single_s = timed(lambda: [run_action(context, task, now) for task in one_by_one])
    created = sum(1 for crm_id in done.values() if crm_id != "held")
    return batched, batched_s, calls() - before, single_s, created


def hubspot(accounts: int, redis: Redis) -> dict[str, float]:
    with FakeHubSpot(validate=False) as hub:
        companies = [hub.add_company({"name": f"Company {n}"}) for n in range(accounts)]
        contacts = [hub.add_contact({"email": f"p{n}@c{n}.example"}) for n in range(100)]
        settings = HubSpotSettings(
            base_url=hub.base_url,
            rate_limit=HubSpotRateLimit(requests=1_000_000, per_seconds=1),
        )
        crm = HubSpotCrm(settings, "product_account_id", PrivateAppToken("test-token"), redis)
        result = compare(
            crm, sweep(companies, contacts, "hubspot"), lambda: len(hub.requests), redis
        )
    return figures("hubspot", accounts, result)


def _saved(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    records = json.loads(request.body)["records"]
    ids = (f"00T{next(_IDS):015d}" for _ in records)
    return 200, {}, json.dumps([{"id": i, "success": True, "errors": []} for i in ids])


def _one(request: Any) -> tuple[int, dict[str, str], str]:  # noqa: ANN401
    return 201, {}, json.dumps({"id": f"00T{next(_IDS):015d}", "success": True, "errors": []})


_IDS = count(1)


def salesforce(accounts: int, redis: Redis) -> dict[str, float]:
    settings = SalesforceSettings(auth=SalesforceAuth(flow="client_credentials", domain="bench.my"))
    secrets = {"SALESFORCE_CONSUMER_KEY": "k", "SALESFORCE_CONSUMER_SECRET": "s"}
    crm = SalesforceCrm(
        settings, "Product_Account_Id__c", login_with(settings, secrets.__getitem__), redis
    )
    companies = [f"001{n:015d}" for n in range(accounts)]
    contacts = [f"003{n:015d}" for n in range(100)]
    with responses.RequestsMock() as rsps:
        rsps.add(
            responses.POST,
            f"{INSTANCE}/services/oauth2/token",
            json={"access_token": "t", "instance_url": INSTANCE},
        )
        rsps.add_callback(responses.POST, f"{API}/composite/sobjects", callback=_saved)
        rsps.add_callback(responses.POST, f"{API}/sobjects/Task", callback=_one)
        result = compare(
            crm, sweep(companies, contacts, "salesforce"), lambda: len(rsps.calls), redis
        )
    return figures("salesforce", accounts, result)


def figures(crm: str, tasks: int, result: tuple[int, float, int, float, int]) -> dict[str, float]:
    batched, batched_s, single, single_s, created = result
    scale = 1000 / tasks
    return {
        f"{crm}.tasks_created_batched": created,
        f"{crm}.calls_per_1000_tasks_batched": round(batched * scale, 2),
        f"{crm}.baseline_calls_per_1000_tasks_one_by_one": round(single * scale, 2),
        f"{crm}.batched_s": round(batched_s, 3),
        f"{crm}.baseline_one_by_one_s": round(single_s, 3),
    }


def main() -> None:
    parser = argparse.ArgumentParser()
    parser.add_argument("--accounts", type=int, default=10_000)
    args = parser.parse_args()
    database = ExitStack()  # an empty database, claimed; flushed and freed at the end
    redis = Redis.from_url(database.enter_context(dev_database(Settings().redis_url)))
    try:
        print("sweep.flagged_accounts", args.accounts)
        for name, value in (
            hubspot(args.accounts, redis) | salesforce(args.accounts, redis)
        ).items():
            print(name, value)
        print(
            "python",
            platform.python_version(),
            "cpus",
            os.cpu_count(),
            platform.machine(),
            "redis",
            redis.info()["redis_version"],
        )
    finally:
        database.close()


if __name__ == "__main__":
    main()
