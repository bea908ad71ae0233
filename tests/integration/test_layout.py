"""Rollups written in the layout before 2026-11: refused until `integration migrate` converts."""

from __future__ import annotations

import json
import sys
from array import array
from datetime import UTC, datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner
from redis import Redis

from integration.cli.main import main
from integration.config.schema import Metrics
from integration.config.settings import Settings
from integration.errors import StorageUnavailableError
from integration.signals.events import UsageEvent
from integration.store import keys, rollups
from tests.conftest import USAGE_SECRET_ENV, signed_headers

NOW = datetime.now(UTC)
LAST = rollups.day_number(NOW.date() - timedelta(days=1))
OLD_DAYS = [10 + day % 7 + (5 if day % 30 == 0 else 0) for day in range(LAST - 447, LAST + 1)]


def write_layout_1(redis: Redis, account: str = "acme") -> None:
    """One account as the previous release stored it: a 448-day u16 ring, slot = day % 448."""
    ring = array("H", [0] * 448)
    for day, value in zip(range(LAST - 447, LAST + 1), OLD_DAYS, strict=True):
        ring[day % 448] = value
    if sys.byteorder == "little":
        ring.byteswap()
    redis.set(keys.daily_metric(account, "active_users"), ring.tobytes())
    meta = {"first_day": LAST - 447, "last_day": LAST, "last_day:active_users": LAST}
    redis.hset(keys.account_meta(account), mapping=meta)
    redis.sadd(keys.known_accounts(), account)
    redis.delete(keys.rollups_layout())  # that release kept no mark


def migrate(settings: Settings) -> list[str]:
    result = CliRunner().invoke(main, ["migrate"], env={"REDIS_URL": settings.redis_url})
    assert result.exit_code == 0, result.output
    return result.output.splitlines()


def test_old_rollups_are_refused_until_migrated_and_then_read_back(
    redis: Redis, settings: Settings
) -> None:
    write_layout_1(redis)
    with pytest.raises(StorageUnavailableError, match="integration migrate"):
        rollups.load_history(redis, "acme", NOW, NOW.date() - timedelta(days=1), 448)
    assert migrate(settings) == ["usage rollups: 1 ring(s) of 1 account(s) converted"]
    history = rollups.load_history(redis, "acme", NOW, NOW.date() - timedelta(days=1), 448)
    assert history.daily_active_users == tuple(OLD_DAYS)  # counts under 32 keep exact codes
    assert migrate(settings) == ["usage rollups: already in the current layout"]
    assert rollups.load_history(
        redis, "acme", NOW, NOW.date() - timedelta(days=1), 448
    ).daily_active_users == tuple(OLD_DAYS)


def test_usage_for_old_rollups_gets_503_and_is_taken_after_the_migration(
    client: Any, redis: Redis, settings: Settings, webhook_secrets: dict[str, str]
) -> None:
    write_layout_1(redis)
    event = {"account_id": "acme", "user_id": "u1", "event": "login", "timestamp": NOW.isoformat()}
    body = json.dumps(event).encode()
    headers = signed_headers(webhook_secrets[USAGE_SECRET_ENV], body)
    answer = client.post("/webhooks/usage", data=body, headers=headers)
    assert answer.status_code == 503
    assert redis.get(keys.delivery_seen("usage", headers["webhook-id"])) is None
    migrate(settings)
    assert client.post("/webhooks/usage", data=body, headers=headers).status_code == 202


def test_an_import_into_old_rollups_says_what_to_run(
    redis: Redis, settings: Settings, tmp_path: Path
) -> None:
    write_layout_1(redis)
    export = tmp_path / "usage.csv"
    export.write_text(f"account_id,date,active_users\nacme,{NOW.date() - timedelta(days=2)},4\n")
    result = CliRunner().invoke(
        main,
        ["import", "usage", str(export), "--config", str(settings.config)],
        env={"REDIS_URL": settings.redis_url},
    )
    assert result.exit_code == 1
    assert "nothing imported: the usage rollups in Redis are in an older layout" in result.output


def test_a_redis_emptied_under_running_processes_is_marked_by_the_next_fold(
    redis: Redis,
) -> None:
    redis.flushdb()  # a restart without persistence, or a FLUSHALL: the mark is gone too
    event = UsageEvent("acme", "u1", "login", NOW)
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), [event], "-", Metrics())
    assert redis.get(keys.rollups_layout()) == rollups.LAYOUT.encode()


def test_migrate_leaves_current_accounts_alone_when_the_mark_was_lost(
    redis: Redis, settings: Settings
) -> None:
    event = UsageEvent("globex", "u1", "login", NOW - timedelta(days=1))
    rollups.fold_usage(redis, keys.delivery_seen("usage", "d1"), [event], "-", Metrics())
    before = rollups.load_history(redis, "globex", NOW, NOW.date(), 3, ("logins",))
    write_layout_1(redis)  # an old account, and no mark
    assert migrate(settings) == ["usage rollups: 1 ring(s) of 1 account(s) converted"]
    after = rollups.load_history(redis, "globex", NOW, NOW.date(), 3, ("logins",))
    assert after == before
