"""What an admin sees when HubSpot's daily API quota runs short: the reserve keeps the urgent
work going, and a spent quota waits for HubSpot's midnight instead of hammering it.

Signals in through the web app, RQ's SimpleWorker, the fake HubSpot portal answering with its
X-HubSpot-RateLimit-Daily headers, the ledger in real Redis."""

from __future__ import annotations

from collections.abc import Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue
from rq.registry import ScheduledJobRegistry

from adapters.budget import budget_status, describe, next_midnight, zone
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from tests.conftest import (
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.e2e.test_hubspot_end_to_end import (
    DROPPING,
    association_removed,
    hubspot_settings,
    portal,  # noqa: F401 - the fixture: Acme (Ana's) and Globex (Ben's), Priya its champion
    post_hubspot,
    start,
)
from tests.fakes.hubspot_server import FakeHubSpot

TIME_ZONE = "America/New_York"
CHAMPION_TASK = "Priya Natarajan left Globex: find a new champion"


@pytest.fixture
def running(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Iterator[tuple[Context, Any]]:
    settings = hubspot_settings(tmp_path, hub, redis_url, monkeypatch)
    config = yaml.safe_load(settings.config.read_text())
    config["budget"] = {"reserve_share": 0.2, "hubspot_time_zone": TIME_ZONE}
    settings.config.write_text(yaml.safe_dump(config))
    context, client = start(Settings(config=settings.config, redis_url=redis_url))
    yield context, client
    jobs.install_context(None)
    context.redis.close()


def subjects(hub: FakeHubSpot) -> list[str]:
    return sorted(task["hs_task_subject"] for task in hub.tasks.values())


def test_with_only_the_reserve_left_a_bulk_refresh_waits_and_the_urgent_task_goes_out(
    hub: FakeHubSpot,
    portal: dict[str, str],  # noqa: F811 - the fixture imported above
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    context, client = running
    hub.daily_limit = 1_000
    hub._daily = 800  # noqa: SLF001 - other apps spent all but the reserve of today's calls
    post_signed(
        client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], daily_usage("acme", DROPPING)
    )
    usage_complete_through_yesterday(redis)
    post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
    drain(redis)

    # Globex's champion left (an urgent playbook): its task and note went out.
    assert subjects(hub) == [CHAMPION_TASK]
    assert len(hub.notes) == 1
    # Acme's usage drop: no field refresh, no check-in task (not urgent) while the reserve holds.
    assert "churn_risk_level" not in hub.companies[portal["acme"]]
    assert "churn_risk_level" not in hub.companies[portal["globex"]]
    status = budget_status(context.queue_redis, "hubspot", context.config, datetime.now(UTC))
    assert status is not None
    assert (status.limit, status.reserved, status.bulk_held) == (1_000, 200, True)
    assert status.used == hub._daily  # noqa: SLF001 - the ledger says what HubSpot said
    assert "only the reserve is left: bulk work waits" in describe(status)


def test_a_spent_daily_quota_reschedules_the_job_for_hubspots_midnight_and_pauses_all_workers(
    hub: FakeHubSpot,
    portal: dict[str, str],  # noqa: F811 - the fixture imported above
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    _, client = running
    hub.daily_limit = 0  # every call from now: 429 with policyName DAILY
    secret = webhook_secrets[USAGE_SECRET_ENV]
    post_signed(client, "/webhooks/usage", secret, daily_usage("acme", DROPPING))
    drain(redis)

    registry = ScheduledJobRegistry(queue=Queue("evaluate", connection=redis))
    [job_id] = registry.get_job_ids()
    midnight = next_midnight(datetime.now(UTC), zone(TIME_ZONE)).timestamp()
    assert abs(registry.get_scheduled_time(job_id).timestamp() - midnight) < 5
    assert abs(redis.ttl("ci:crm:hubspot:paused") - (midnight - datetime.now(UTC).timestamp())) < 5

    # Meanwhile no worker spends a call on the spent portal, urgent work included.
    calls_before = len(hub.requests)
    post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
    drain(redis)
    assert len(hub.requests) == calls_before
    assert hub.tasks == {}
