"""What a HubSpot admin and rep see: signals in, then companies, tasks and notes in HubSpot."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import time
from collections.abc import Callable, Iterator
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from redis import Redis

from adapters.budget import next_midnight
from integration.cli.main import main
from integration.config.settings import Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.store import waiting
from tests.conftest import (
    PEOPLE_SECRET_ENV,
    USAGE_SECRET_ENV,
    daily_usage,
    drain,
    nothing_stored,
    post_signed,
    usage_complete_through_yesterday,
)
from tests.fakes.hubspot_server import FakeHubSpot
from webhooks.app import create_app

CLIENT_SECRET = "hubspot-app-client-secret"
PUBLIC_URL = "http://localhost/webhooks/hubspot"
DROPPING = [10] * 42 + [4] * 7


@pytest.fixture
def portal(hub: FakeHubSpot) -> dict[str, str]:
    ana = hub.add_owner("ana@vendor.example", "Ana", "Ortiz")
    ben = hub.add_owner("ben@vendor.example", "Ben", "Cole")
    acme = hub.add_company(
        {
            "name": "Acme Analytics",
            "product_account_id": "acme",
            "domain": "acme.example",
            "hubspot_owner_id": ana["id"],
        }
    )
    globex = hub.add_company(
        {
            "name": "Globex",
            "product_account_id": "globex",
            "domain": "globex.example",
            "hubspot_owner_id": ben["id"],
        }
    )
    priya = hub.add_contact(
        {
            "email": "priya@globex.example",
            "firstname": "Priya",
            "lastname": "Natarajan",
            "jobtitle": "Director of Operations",
            "hs_buying_role": "CHAMPION;END_USER",
        }
    )
    return {"ana": ana["id"], "ben": ben["id"], "acme": acme, "globex": globex, "priya": priya}


def hubspot_settings(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    playbooks: dict[str, Any] | None = None,
) -> Settings:
    monkeypatch.setenv("HUBSPOT_ACCESS_TOKEN", "test-token")
    monkeypatch.setenv("HUBSPOT_CLIENT_SECRET", CLIENT_SECRET)
    config: dict[str, Any] = {
        "crm": {
            "kind": "hubspot",
            "hubspot": {
                "base_url": hub.base_url,
                "lookup_cache_seconds": 0,
                "webhook": {"client_secret_env": "HUBSPOT_CLIENT_SECRET", "public_url": PUBLIC_URL},
            },
        },
        "webhooks": {
            "usage": {"secret_env": USAGE_SECRET_ENV},
            "job_changes": {"secret_env": PEOPLE_SECRET_ENV},
        },
        "evaluation": {"settle_seconds": 0, "interval_seconds": 0, "backfill_quiet_seconds": 0},
    }
    if playbooks is not None:
        config["playbooks"] = playbooks
    path = tmp_path / "hubspot.yaml"
    path.write_text(yaml.safe_dump(config))
    return Settings(config=path, redis_url=redis_url)


@pytest.fixture
def hs_settings(
    tmp_path: Path,
    hub: FakeHubSpot,
    redis_url: str,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Settings:
    return hubspot_settings(tmp_path, hub, redis_url, monkeypatch)


def start(settings: Settings) -> tuple[Context, Any]:
    context = build_context(settings, read_config(settings.config))
    jobs.install_context(context)
    return context, create_app(settings, context.config).test_client()


@pytest.fixture
def running(hs_settings: Settings) -> Iterator[tuple[Context, Any]]:
    context, client = start(hs_settings)
    yield context, client
    jobs.install_context(None)
    context.redis.close()


def post_hubspot(client: Any, events: list[dict[str, Any]], timestamp_ms: int | None = None) -> Any:
    body = json.dumps(events)
    stamp = str(timestamp_ms or int(time.time() * 1000))
    digest = hmac.new(
        CLIENT_SECRET.encode(), f"POST{PUBLIC_URL}{body}{stamp}".encode(), hashlib.sha256
    ).digest()
    headers = {
        "X-HubSpot-Signature-v3": base64.b64encode(digest).decode(),
        "X-HubSpot-Request-Timestamp": stamp,
        "Content-Type": "application/json",
    }
    return client.post("/webhooks/hubspot", data=body, headers=headers)


def task_completed(task_id: str, occurred_ms: int) -> dict[str, Any]:
    """HubSpot's webhook event for a task marked complete (hs_task_status -> COMPLETED)."""
    return {
        "subscriptionType": "object.propertyChange",
        "objectTypeId": "0-27",
        "objectId": int(task_id),
        "propertyName": "hs_task_status",
        "propertyValue": "COMPLETED",
        "eventId": 6,
        "subscriptionId": 9,
        "portalId": 33,
        "occurredAt": occurred_ms,
    }


def association_removed(
    contact: str, company: str, event_id: int = 1, occurred_at: int | None = None
) -> dict[str, Any]:
    return {
        "subscriptionType": "contact.associationChange",
        "associationType": "CONTACT_TO_COMPANY",
        "fromObjectId": int(contact),
        "toObjectId": int(company),
        "associationRemoved": True,
        "eventId": event_id,
        "subscriptionId": 7,
        "portalId": 33,
        "appId": 1,
        "occurredAt": occurred_at or int(time.time() * 1000),
        "attemptNumber": 0,
    }


def tasks(hub: FakeHubSpot) -> list[dict[str, str]]:
    return list(hub.tasks.values())


def test_a_usage_drop_writes_the_fields_and_one_task_for_the_company_owner(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    _, client = running
    events = daily_usage("acme", DROPPING, seats=20)
    secret = webhook_secrets[USAGE_SECRET_ENV]
    assert post_signed(client, "/webhooks/usage", secret, events, msg_id="m1").status_code == 202
    usage_complete_through_yesterday(redis)
    drain(redis)
    post_signed(client, "/webhooks/usage", secret, events, msg_id="m1")  # a retrying sender
    drain(redis)

    company = hub.companies[portal["acme"]]
    assert (
        company["churn_risk_level"],
        company["usage_trend_pct"],
        company["license_utilization_pct"],
    ) == ("high", "-60", "50")
    assert company["churn_risk_reasons"].startswith("Daily active users fell 60% below")
    [task] = tasks(hub)
    assert task["hs_task_subject"] == "Check in with Acme Analytics: product usage is down 60%"
    assert (task["hubspot_owner_id"], task["hs_task_priority"], task["hs_task_type"]) == (
        portal["ana"],
        "HIGH",
        "CALL",
    )
    [task_id] = hub.tasks
    assert [a["to"]["id"] for a in hub.associations["tasks"][task_id]] == [portal["acme"]]


def test_a_champion_removed_from_their_company_in_hubspot_gets_one_multithread_task(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
) -> None:
    _, client = running
    event = association_removed(portal["priya"], portal["globex"])
    answer = post_hubspot(client, [event])
    assert answer.json == {"status": "accepted", "queued": 1, "duplicates": 0, "ignored": 0}
    assert post_hubspot(client, [event]).json["duplicates"] == 1  # HubSpot retried
    drain(redis)

    [task] = tasks(hub)
    assert task["hs_task_subject"] == "Priya Natarajan left Globex: find a new champion"
    assert task["hubspot_owner_id"] == portal["ben"]
    [task_id] = hub.tasks
    assert sorted(a["to"]["id"] for a in hub.associations["tasks"][task_id]) == sorted(
        [portal["globex"], portal["priya"]]
    )
    assert hub.companies[portal["globex"]]["churn_risk_level"] == "high"
    [(note_id, note)] = hub.notes.items()
    assert note["hs_note_body"].startswith("Champion change: Champion Priya Natarajan, Director")
    assert sorted(a["to"]["id"] for a in hub.associations["notes"][note_id]) == sorted(
        [portal["globex"], portal["priya"]]
    )


def test_an_older_event_arriving_late_changes_nothing(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
) -> None:
    context, client = running
    now = int(time.time() * 1000)
    post_hubspot(
        client,
        [
            {
                "subscriptionType": "company.propertyChange",
                "objectId": int(portal["globex"]),
                "propertyName": "hubspot_owner_id",
                "propertyValue": portal["ana"],
                "eventId": 2,
                "subscriptionId": 8,
                "portalId": 33,
                "occurredAt": now,
            }
        ],
    )
    post_hubspot(
        client,
        [
            {
                "subscriptionType": "company.propertyChange",
                "objectId": int(portal["globex"]),
                "propertyName": "hubspot_owner_id",
                "propertyValue": portal["ben"],
                "eventId": 1,
                "subscriptionId": 8,
                "portalId": 33,
                "occurredAt": now - 60_000,
            }
        ],
    )
    drain(redis)
    results = [job.return_value() for job in _finished(redis)]
    assert sorted(results) == ["out_of_order", "reassigned 0"]


def _finished(redis: Redis) -> list[Any]:
    from rq import Queue
    from rq.registry import FinishedJobRegistry

    queue = Queue("signals", connection=redis)
    return [queue.fetch_job(job_id) for job_id in FinishedJobRegistry(queue=queue).get_job_ids()]


def test_a_new_company_owner_takes_over_open_tasks_and_completion_is_an_outcome(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
) -> None:
    _, client = running
    post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
    drain(redis)
    [task_id] = hub.tasks
    post_hubspot(
        client,
        [
            {
                "subscriptionType": "company.propertyChange",
                "objectId": int(portal["globex"]),
                "propertyName": "hubspot_owner_id",
                "propertyValue": portal["ana"],
                "eventId": 5,
                "subscriptionId": 8,
                "portalId": 33,
                "occurredAt": int(time.time() * 1000),
            }
        ],
    )
    drain(redis)
    assert hub.tasks[task_id]["hubspot_owner_id"] == portal["ana"]

    post_hubspot(
        client,
        [task_completed(task_id, int(time.time() * 1000))],
    )
    drain(redis)
    [outcome] = [json.loads(raw) for raw in redis.lrange("ci:{acct:globex}:outcomes", 0, -1)]
    assert (outcome["playbook"], outcome["task_id"]) == ("champion_left_multithread", task_id)
    assert redis.smembers("ci:{acct:globex}:open_tasks") == set()


def test_a_bad_hubspot_signature_is_refused_and_nothing_queued(
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
) -> None:
    _, client = running
    stale = int(time.time() * 1000) - 6 * 60 * 1000
    answer = post_hubspot(client, [association_removed(portal["priya"], portal["globex"])], stale)
    assert answer.status_code == 401
    assert (
        answer.json["message"]
        == "X-HubSpot-Request-Timestamp is more than 5 minutes from our clock"
    )
    assert nothing_stored(redis)


@pytest.fixture
def champion_left_with_a_sequence(
    tmp_path: Path,
    hub: FakeHubSpot,
    portal: dict[str, str],
    redis_url: str,
    redis: Redis,
    monkeypatch: pytest.MonkeyPatch,
    webhook_secrets: dict[str, str],
) -> Iterator[Callable[[], None]]:
    """Runs the champion-left playbook, set to enroll the champion in sequence 4455."""
    settings = hubspot_settings(
        tmp_path,
        hub,
        redis_url,
        monkeypatch,
        playbooks={"champion_left_multithread": {"sequence_id": "4455"}},
    )
    context, client = start(settings)

    def run() -> None:
        post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
        drain(redis)

    yield run
    jobs.install_context(None)
    context.redis.close()


def test_without_sequences_access_the_owner_gets_a_task_naming_the_sequence(
    hub: FakeHubSpot, champion_left_with_a_sequence: Callable[[], None]
) -> None:
    hub.sequences_access = False
    champion_left_with_a_sequence()
    subjects = sorted(task["hs_task_subject"] for task in tasks(hub))
    assert subjects == [
        "Priya Natarajan left Globex: find a new champion",
        "Start sequence 4455 for Priya Natarajan at Globex",
    ]
    fallback = next(t for t in tasks(hub) if t["hs_task_subject"].startswith("Start sequence"))
    assert "MISSING_SCOPES" in fallback["hs_task_body"]
    assert hub.enrollments == []


def test_with_sequences_access_the_champion_is_enrolled_as_the_owner(
    hub: FakeHubSpot, portal: dict[str, str], champion_left_with_a_sequence: Callable[[], None]
) -> None:
    champion_left_with_a_sequence()
    [enrollment] = hub.enrollments
    assert (enrollment["contactId"], enrollment["sequenceId"], enrollment["senderEmail"]) == (
        portal["priya"],
        "4455",
        "ben@vendor.example",
    )


def test_a_refused_task_lands_in_failed_jobs_and_retry_creates_it(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    hs_settings: Settings,
) -> None:
    _, client = running
    body = {
        "status": "error",
        "message": "Property values were not valid",
        "correlationId": "aaaa-1111",
        "category": "VALIDATION_ERROR",
    }
    # The batch create, then the step's job of its own, until the cause is fixed.
    hub.fail_next("POST", r"^/crm/v3/objects/tasks/batch/create$", 400, body, times=2)
    post_hubspot(client, [association_removed(portal["priya"], portal["globex"])])
    drain(redis)
    assert hub.tasks == {}

    env = {"REDIS_URL": hs_settings.redis_url}
    listed = CliRunner().invoke(main, ["failed", "--config", str(hs_settings.config)], env=env)
    assert "Property values were not valid [VALIDATION_ERROR, correlationId aaaa-1111]" in (
        listed.output
    )
    retried = CliRunner().invoke(
        main, ["retry", "--all", "--config", str(hs_settings.config)], env=env
    )
    assert retried.output == "re-queued 1 job(s)\n"
    drain(redis)
    assert [t["hs_task_subject"] for t in tasks(hub)] == [
        "Priya Natarajan left Globex: find a new champion"
    ]


def test_usage_for_an_account_hubspot_lacks_is_listed_as_unmatched(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    hs_settings: Settings,
    webhook_secrets: dict[str, str],
) -> None:
    _, client = running
    post_signed(
        client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], daily_usage("hooli", DROPPING)
    )
    drain(redis)
    assert hub.tasks == {}
    listed = CliRunner().invoke(
        main,
        ["unmatched", "--config", str(hs_settings.config)],
        env={"REDIS_URL": hs_settings.redis_url},
    )
    assert [" ".join(line.split()[1:]) for line in listed.output.splitlines()] == [
        "account hooli seen 1x"
    ]


def test_the_daily_limit_schedules_the_retry_for_when_hubspot_said_not_sooner(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
    webhook_secrets: dict[str, str],
) -> None:
    from rq import Queue
    from rq.registry import ScheduledJobRegistry

    _, client = running
    daily = {
        "status": "error",
        "message": "You have reached your daily limit.",
        "errorType": "RATE_LIMIT",
        "correlationId": "c-1",
        "policyName": "DAILY",
    }
    hub.fail_next("POST", "/companies/batch/read", 429, daily)
    post_signed(
        client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], daily_usage("acme", DROPPING)
    )
    drain(redis)
    registry = ScheduledJobRegistry(queue=Queue("evaluate", connection=redis))
    [job_id] = registry.get_job_ids()
    # HubSpot's daily counter resets at midnight in the portal's time zone (budget: UTC here).
    midnight = next_midnight(datetime.now(UTC), UTC).timestamp()
    assert abs(registry.get_scheduled_time(job_id).timestamp() - midnight) < 5
    assert waiting.waiting_accounts(redis) == {"acme"}  # still waiting, not lost

    # Meanwhile no worker spends calls on a portal that is out of its daily budget.
    calls_before = len(hub.requests)
    post_signed(
        client,
        "/webhooks/usage",
        webhook_secrets[USAGE_SECRET_ENV],
        daily_usage("globex", DROPPING),
    )
    drain(redis)
    assert len(hub.requests) == calls_before


def test_a_title_change_for_a_contact_without_a_known_company_is_listed(
    hub: FakeHubSpot,
    portal: dict[str, str],
    running: tuple[Context, Any],
    redis: Redis,
) -> None:
    _, client = running
    loner = hub.add_contact({"email": "sam@nowhere.example", "jobtitle": "CTO"})
    post_hubspot(
        client,
        [
            {
                "subscriptionType": "contact.propertyChange",
                "objectId": int(loner),
                "propertyName": "jobtitle",
                "propertyValue": "CEO",
                "eventId": 9,
                "subscriptionId": 7,
                "portalId": 33,
                "occurredAt": int(time.time() * 1000),
            }
        ],
    )
    drain(redis)
    assert f"crm_change:hubspot contact_title_changed {loner}".encode() in redis.hkeys(
        "ci:unmatched"
    )
