"""Shared fixtures: a real Redis (empty database, flushed around each test) and a real RQ worker."""

from __future__ import annotations

import base64
import hashlib
import hmac
import json
import os
import secrets
import time
import uuid
from collections.abc import Iterator
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from redis import Redis
from rq import Queue, SimpleWorker

from integration.cli.devredis import RedisNotFoundError, claimed_database, find_or_start
from integration.config.schema import Config
from integration.config.settings import DEFAULT_REDIS_URL, Settings
from integration.jobs import evaluate as jobs
from integration.jobs.context import Context, build_context, read_config
from integration.jobs.fold import fold_backlog
from integration.jobs.queues import QUEUE_NAMES
from integration.store import freshness, keys, layout
from webhooks.app import create_app

pytest_plugins = ["tests.specs_folder"]

USAGE_SECRET_ENV = "TEST_USAGE_SECRET"
PEOPLE_SECRET_ENV = "TEST_PEOPLE_SECRET"
# `webhooks:` as the tests configure it: each source signed with its secret from the environment.
WEBHOOKS = {
    "usage": {"secret_env": USAGE_SECRET_ENV},
    "job_changes": {"secret_env": PEOPLE_SECRET_ENV},
}
# `evaluation:` judged as soon as a worker runs; tests of the waiting set their own times.
JUDGED_AT_ONCE = {"settle_seconds": 0, "interval_seconds": 0, "backfill_quiet_seconds": 0}

# Priya, a champion at Globex, leaves for Umbrella (a people-data row, as Clay sends it).
CHAMPION_LEFT = {
    "event_id": "clay-row-1",
    "source": "clay",
    "change_type": "company_change",
    "email": "priya@globex.example",
    "first_name": "Priya",
    "last_name": "Natarajan",
    "previous_company_domain": "globex.example",
    "previous_job_title": "Director of Operations",
    "current_company_name": "Umbrella Corp",
    "current_job_title": "VP Operations",
    "relationship_type": "Champion",
}


@pytest.fixture(scope="session")
def redis_server_url() -> Iterator[str]:
    try:
        server = find_or_start(os.environ.get("REDIS_URL", DEFAULT_REDIS_URL))
    except RedisNotFoundError as exc:
        pytest.exit(f"no Redis for the tests: {exc}", returncode=1)
    yield server.url
    server.stop()


@pytest.fixture(scope="session")
def session_database_url(redis_server_url: str) -> Iterator[str]:
    """One empty logical database, claimed for this test session alone."""
    with claimed_database(redis_server_url) as url, Redis.from_url(url) as client:
        yield url
        client.flushdb()


@pytest.fixture
def redis_url(session_database_url: str) -> Iterator[str]:
    with Redis.from_url(session_database_url) as client:
        client.flushdb()
        yield session_database_url
        client.flushdb()


@pytest.fixture
def redis(redis_url: str) -> Iterator[Redis]:
    with Redis.from_url(redis_url) as client:
        layout.prepare(client)  # as every process does at start-up
        yield client


def whsec() -> str:
    return "whsec_" + base64.b64encode(secrets.token_bytes(24)).decode()


@pytest.fixture
def webhook_secrets(monkeypatch: pytest.MonkeyPatch) -> dict[str, str]:
    values = {USAGE_SECRET_ENV: whsec(), PEOPLE_SECRET_ENV: whsec()}
    for name, value in values.items():
        monkeypatch.setenv(name, value)
    return values


SEED = {
    "owners": [
        {"id": "owner-ana", "name": "Ana Ortiz", "email": "ana@vendor.example"},
        {"id": "owner-ben", "name": "Ben Cole", "email": "ben@vendor.example"},
    ],
    "companies": [
        {
            "id": "1001",
            "name": "Acme Analytics",
            "domain": "acme.example",
            "owner_id": "owner-ana",
            "properties": {"product_account_id": "acme"},
        },
        {
            "id": "1002",
            "name": "Globex",
            "domain": "globex.example",
            "owner_id": "owner-ben",
            "properties": {"product_account_id": "globex"},
        },
        {
            "id": "1003",
            "name": "Initech",
            "domain": "initech.example",
            "owner_id": None,
            "properties": {"product_account_id": "initech"},
        },
    ],
    "contacts": [
        {
            "id": "2001",
            "email": "priya@globex.example",
            "name": "Priya Natarajan",
            "company_id": "1002",
        },
    ],
}


@pytest.fixture
def config_file(tmp_path: Path, webhook_secrets: dict[str, str]) -> Path:
    seed = tmp_path / "seed.yaml"
    seed.write_text(yaml.safe_dump(SEED))
    path = tmp_path / "config.yaml"
    path.write_text(
        yaml.safe_dump(
            {
                "crm": {
                    "kind": "sandbox",
                    "sandbox": {"path": str(tmp_path / "crm.sqlite3"), "seed_file": str(seed)},
                },
                "owners": {"fallback_owner": "owner-ana"},
                "webhooks": WEBHOOKS,
                "evaluation": JUDGED_AT_ONCE,
            }
        )
    )
    return path


@pytest.fixture
def settings(config_file: Path, redis_url: str) -> Settings:
    return Settings(config=config_file, redis_url=redis_url)


@pytest.fixture
def context(settings: Settings) -> Iterator[Context]:
    built = build_context(settings, read_config(settings.config))
    jobs.install_context(built)
    yield built
    jobs.install_context(None)
    built.redis.close()


@pytest.fixture
def client(settings: Settings, context: Context) -> Iterator[Any]:
    app = create_app(settings, context.config)
    yield app.test_client()
    app.extensions["integration.redis"].close()


def fold(redis: Redis, config: Config | None = None, queue_redis: Redis | None = None) -> int:
    """Fold what the ingest stream on the state Redis `redis` holds into the rollups, in this
    process, with the code the `integration fold` consumer runs; evaluations are queued on
    `queue_redis` (the same Redis unless given). The config is the installed jobs context's
    when one is installed, else the defaults: this never builds a context from the
    environment (which would point at another database)."""
    if not redis.xlen(keys.ingest_stream()):
        return 0  # nothing to fold
    return fold_backlog(redis, queue_redis or redis, config or installed_config())


def installed_config() -> Config:
    """The config of the jobs context a test installed, else the defaults (metrics, evaluation
    interval) a config with nothing but a CRM has."""
    installed = jobs._context  # not current_context(): that would build one from the env
    return installed.config if installed else Config.model_validate({"crm": {"kind": "sandbox"}})


def drain(redis: Redis, config: Config | None = None, queue_redis: Redis | None = None) -> bool:
    """Fold the ingest stream (on the state Redis `redis`), then run every queued job in this
    process with a real RQ worker on `queue_redis` (the same Redis unless given); again until
    both are empty."""
    queue_redis = queue_redis or redis
    queues = [Queue(name, connection=queue_redis) for name in QUEUE_NAMES]
    worked = False
    while True:
        fold(redis, config, queue_redis)
        worked = SimpleWorker(queues, connection=queue_redis).work(burst=True) or worked
        if not redis.xlen(keys.ingest_stream()):
            return worked


def sign(secret: str, msg_id: str, timestamp: int, body: bytes) -> str:
    """Standard Webhooks v1 signature, computed here rather than by the library under test."""
    key = base64.b64decode(secret.removeprefix("whsec_"))
    signed = f"{msg_id}.{timestamp}.".encode() + body
    return "v1," + base64.b64encode(hmac.new(key, signed, hashlib.sha256).digest()).decode()


def signed_headers(
    secret: str, body: bytes, msg_id: str | None = None, timestamp: int | None = None
) -> dict[str, str]:
    msg_id = msg_id or f"msg_{uuid.uuid4().hex}"
    timestamp = int(time.time()) if timestamp is None else timestamp
    return {
        "webhook-id": msg_id,
        "webhook-timestamp": str(timestamp),
        "webhook-signature": sign(secret, msg_id, timestamp, body),
        "content-type": "application/json",
    }


def post_signed(
    client: Any, path: str, secret: str, payload: Any, msg_id: str | None = None
) -> Any:
    body = json.dumps(payload).encode()
    return client.post(path, data=body, headers=signed_headers(secret, body, msg_id))


def daily_usage(
    account_id: str, users_per_day: list[int], end: datetime | None = None, seats: int | None = None
) -> list[dict[str, Any]]:
    """Login events: users_per_day[i] distinct users on day i, the last entry on `end`'s day."""
    end = end or datetime.now(UTC) - timedelta(days=1)
    events = []
    for offset, users in enumerate(reversed(users_per_day)):
        day = (end - timedelta(days=offset)).replace(hour=12, minute=0, second=0, microsecond=0)
        for user in range(users):
            event = {
                "account_id": account_id,
                "user_id": f"{account_id}-user-{user}",
                "event": "login",
                "timestamp": day.isoformat(),
            }
            if seats is not None:
                event["seats"] = seats
            events.append(event)
    return events


def usage_complete_through_yesterday(redis: Redis) -> None:
    """What a live sender's first event of today does: usage up to yesterday counts as arrived
    (a source's watermark is its newest event day less one: integration/store/freshness.py).
    Tests post history ending yesterday and nothing of today."""
    freshness.raise_watermark(redis, freshness.USAGE, datetime.now(UTC).date() - timedelta(days=1))


@pytest.fixture
def hub() -> Iterator[Any]:
    """A fake HubSpot portal on loopback; every request it got must match HubSpot's specs
    (when they are present: tests/specs_folder.py)."""
    from tests.fakes.hubspot_server import FakeHubSpot

    with FakeHubSpot() as fake:
        fake.unique_properties["companies"].add("product_account_id")
        yield fake
        assert fake.spec_problems() == []
        assert fake.server_errors == []


@pytest.fixture
def slack(monkeypatch: pytest.MonkeyPatch) -> Iterator[Any]:
    """A fake Slack workspace on loopback, its bot token set; every call it got must succeed."""
    from tests.fakes.slack_server import TEST_TOKEN, FakeSlack

    monkeypatch.setenv("SLACK_BOT_TOKEN", TEST_TOKEN)
    with FakeSlack() as fake:
        yield fake
        assert [r.method for r in fake.requests if r.status != 200] == []


def nothing_stored(redis: Redis) -> bool:
    """True when Redis holds nothing but the layout mark every process sets at start-up."""
    return {keys.text(key) for key in redis.scan_iter()} <= {keys.rollups_layout()}
