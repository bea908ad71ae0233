"""An upgrade to the tagged ingest and coordination keys loses no accepted entry (issue 14, item 6).

The previous release kept the ingest stream at `ci:ingest`, delivery marks at
`ci:delivery:<source>:<id>`, and known accounts, watermarks and when closings began without the
{ci} tag. `integration migrate` (and, for all but the delivery marks, the sweep) moves them.
"""

from __future__ import annotations

from datetime import UTC, datetime
from typing import Any

from click.testing import CliRunner
from redis import Redis

from integration.cli.main import main
from integration.config.settings import Settings
from integration.store import ingest_stream, keys, renames
from tests.conftest import USAGE_SECRET_ENV, fold, post_signed

NOW = datetime.now(UTC).replace(microsecond=0)
BODY = '[{"account_id": "acme", "user_id": "u1", "event": "login", "timestamp": "%s"}]'


def seed_previous_release(redis: Redis) -> str:
    """Two accepted entries, one of them read by a consumer that died; a delivery mark with a
    day to live; the coordination keys under their old names. Returns the pending entry id."""
    redis.xgroup_create("ci:ingest", keys.INGEST_GROUP, id="0", mkstream=True)
    for _ in range(2):
        fields = {"s": "usage", "t": NOW.timestamp(), "b": BODY % NOW.isoformat()}
        redis.xadd("ci:ingest", fields)  # type: ignore[arg-type]
    [[_, [(pending, _)]]] = redis.xreadgroup(keys.INGEST_GROUP, "old", {"ci:ingest": ">"}, 1)
    redis.set("ci:delivery:usage:msg_1", "1", ex=86_400)
    redis.sadd("ci:known_accounts", "globex")
    redis.hset("ci:watermarks", "usage", 20_000)
    redis.set("ci:tickets:closings_seen", 1_700_000_000)
    return keys.text(pending)


def test_migrate_moves_the_stream_marks_and_coordination_keys_and_nothing_is_lost(
    client: Any, redis: Redis, settings: Settings, webhook_secrets: dict[str, str]
) -> None:
    pending = seed_previous_release(redis)
    redis.set(keys.ticket_closings_seen(), 1_800_000_000)  # a later one, written meanwhile
    env = {"REDIS_URL": settings.redis_url, "INTEGRATION_CONFIG": str(settings.config)}
    result = CliRunner().invoke(main, ["migrate"], env=env)
    assert result.exit_code == 0, result.output
    assert "delivery marks: 1 moved to their tagged names" in result.output
    assert redis.exists("ci:ingest", "ci:delivery:usage:msg_1", "ci:known_accounts") == 0
    assert redis.exists("ci:watermarks", "ci:tickets:closings_seen") == 0
    assert 0 < redis.ttl(keys.delivery_seen("usage", "msg_1")) <= 86_400
    assert redis.smembers(keys.known_accounts()) == {b"globex"}
    assert redis.hget(keys.watermarks(), "usage") == b"20000"
    assert redis.get(keys.ticket_closings_seen()) == b"1700000000"  # the earlier stands
    # The entry the dead consumer held is still pending, under the new name.
    assert ingest_stream.claim(redis, "new", 10, idle_ms=0)[0].id == pending

    secret = webhook_secrets[USAGE_SECRET_ENV]
    body = [{"account_id": "acme", "user_id": "u1", "event": "login", "timestamp": NOW.isoformat()}]
    again = post_signed(client, "/webhooks/usage", secret, body, msg_id="msg_1")
    assert again.status_code == 200  # the previous release took it: still a duplicate
    assert fold(redis) == 2
    assert sum(redis.get(keys.daily_metric("acme", "events")) or b"") == 2
    assert renames.adopt_untagged_keys(redis) == 0
    assert renames.adopt_delivery_marks(redis) == 0


def test_entries_a_previous_web_app_still_appends_are_moved_unfolded_to_the_new_stream(
    redis: Redis,
) -> None:
    ingest_stream.ensure_group(redis)
    fields = {"s": "usage", "t": NOW.timestamp(), "b": BODY % NOW.isoformat()}
    redis.xadd(keys.ingest_stream(), fields)  # type: ignore[arg-type]
    redis.xadd("ci:ingest", fields)  # type: ignore[arg-type]  # a web app not yet upgraded
    assert renames.adopt_untagged_keys(redis) == 1
    assert (redis.exists("ci:ingest"), redis.xlen(keys.ingest_stream())) == (0, 2)
