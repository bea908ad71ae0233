"""Ingest at the durable floor: the web edge accepts into a Redis Stream, `integration fold` folds.

Real Redis, the real web app (test client) and the real consumer code; the consumer process test
runs `integration fold` as the Procfile does.
"""

from __future__ import annotations

import json
import subprocess
import sys
import time
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from integration.config.settings import Settings
from integration.jobs.fold import EvaluationQueue
from integration.jobs.fold import fold as fold_entries
from integration.signals.events import parse_usage
from integration.store import folding, ingest_stream, keys, waiting
from tests.conftest import USAGE_SECRET_ENV, fold, post_signed, signed_headers
from webhooks import edge

NOW = datetime.now(UTC).replace(hour=12, minute=0, second=0, microsecond=0)


def deliveries() -> list[list[dict[str, Any]]]:
    """Three deliveries sharing account-days, an event re-sent under a new delivery id, seats
    reported late, a ticket opened and closed, a day of history."""

    def event(account: str, user: str, name: str, hours: float, **extra: Any) -> dict[str, Any]:
        when = NOW - timedelta(hours=hours)
        return (
            {"account_id": account, "user_id": user, "event": name}
            | {"timestamp": when.isoformat()}
            | extra
        )

    return [
        [
            event("acme", "u1", "login", 1, event_id="e1", seats=20),
            event("acme", "u2", "report_viewed", 2),
            event("globex", "u1", "login", 30),
            event("globex", "u9", "ticket_opened", 3, properties={"ticket_id": "t-1"}),
        ],
        [
            event("acme", "u1", "login", 1, event_id="e1"),  # re-sent: counted once
            event("acme", "u3", "login", 0.5, seats=15),
            event("initech", "u1", "login", 24 * 5),  # history
        ],
        [
            event("globex", "u9", "ticket_closed", 1, properties={"ticket_id": "t-1"}),
            event("globex", "u2", "login", 2, event_id="e1"),  # another account's e1
            event("acme", "u2", "login", 26, seats=25),  # seats reported late
        ],
    ]


def snapshot(redis: Redis) -> dict[str, Any]:
    """Every rollup-side key's value, read by type (the stream and marks left out)."""
    found: dict[str, Any] = {}
    for raw in redis.scan_iter():
        key = keys.text(raw)
        if key.startswith(("rq:", f"{keys.PREFIX}:{keys.INGEST_TAG}:")):  # stream, marks, layout
            continue
        if key.endswith(":folded"):  # the entries folded into an account: the stream's alone
            continue
        kind = keys.text(redis.type(key))
        if kind == "string" and f":{keys.DAY_USERS}" in key:  # a day's HyperLogLog: its count
            found[key] = redis.pfcount(key)
        elif kind == "string":
            found[key] = redis.get(key)
        elif kind == "hash":
            found[key] = redis.hgetall(key)
        elif kind == "zset":
            found[key] = redis.zrange(key, 0, -1, withscores=True)
        elif kind == "set":
            found[key] = redis.smembers(key)
    return found


@pytest.fixture
def clock(monkeypatch: pytest.MonkeyPatch) -> datetime:
    monkeypatch.setattr(edge, "now", lambda: NOW)
    return NOW


def test_accepted_then_folded_equals_the_fold_on_the_request_path(
    client: Any, redis: Redis, context: Any, webhook_secrets: dict[str, str], clock: datetime
) -> None:
    # The release before: each delivery folded on its own, in its request.
    for number, body in enumerate(deliveries()):
        events = parse_usage(body, NOW, 1000)
        delivery = keys.delivery_seen("usage", f"d{number}")
        folding.fold_usage(redis, delivery, events, context.config.metrics, NOW)
    before = snapshot(redis)
    assert keys.account_meta("initech") in before
    redis.flushdb()

    secret = webhook_secrets[USAGE_SECRET_ENV]
    for body in deliveries():
        assert post_signed(client, "/webhooks/usage", secret, body).status_code == 202
    assert fold(redis) == 9  # 10 sent, e1 re-sent
    assert snapshot(redis) == before


def test_a_duplicate_delivery_never_enters_the_stream(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    body = deliveries()[0]
    answers = [post_signed(client, "/webhooks/usage", secret, body, msg_id="m1") for _ in range(3)]
    assert [a.status_code for a in answers] == [202, 200, 200]
    assert redis.xlen(keys.ingest_stream()) == 1
    fold(redis)
    again = post_signed(client, "/webhooks/usage", secret, body, msg_id="m1")
    assert (again.status_code, redis.xlen(keys.ingest_stream())) == (200, 0)


def acme_events(redis: Redis) -> int:
    return sum(redis.get(keys.daily_metric("acme", "events")) or b"")


def test_a_consumer_that_dies_holding_entries_has_them_folded_once_by_another(
    client: Any, redis: Redis, context: Any, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    event = {"account_id": "acme", "user_id": "u1", "event": "login"}
    for _ in range(3):
        post_signed(client, "/webhooks/usage", secret, event | {"timestamp": NOW.isoformat()})
    ingest_stream.ensure_group(redis)
    held = ingest_stream.read(redis, "dead", 10, None)  # read, then the process was killed
    assert len(held) == 3
    assert ingest_stream.claim(redis, "alive", 10) == []  # not idle long enough yet
    claimed = ingest_stream.claim(redis, "alive", 10, idle_ms=0)
    assert [e.id for e in claimed] == [e.id for e in held]
    queue = EvaluationQueue(redis, 0)
    assert fold_entries(redis, claimed, "alive", context.config, queue) == 3
    # The stale consumer wakes up and folds what it held: another folded it, so nothing is.
    assert fold_entries(redis, held, "dead", context.config, queue) == 0
    assert fold_entries(redis, claimed, "alive", context.config, queue) == 0  # again: nothing
    assert acme_events(redis) == 3
    assert redis.xlen(keys.ingest_stream()) == 0
    assert redis.xpending(keys.ingest_stream(), keys.INGEST_GROUP)["pending"] == 0


class KilledError(Exception):
    """The consumer process dies here."""


def test_entries_folded_by_a_consumer_killed_before_acknowledging_count_once(
    client: Any,
    redis: Redis,
    context: Any,
    webhook_secrets: dict[str, str],
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    for account in ("acme", "acme", "globex"):
        event = {"account_id": account, "user_id": "u1", "event": "login"}
        post_signed(client, "/webhooks/usage", secret, event | {"timestamp": NOW.isoformat()})
    ingest_stream.ensure_group(redis)
    held = ingest_stream.read(redis, "dying", 10, None)
    queue = EvaluationQueue(redis, 0)

    def killed(*_: Any) -> int:
        raise KilledError

    # Its accounts are written and marked dirty, then it dies before acknowledging the entries.
    monkeypatch.setattr(ingest_stream, "acknowledge", killed)
    with pytest.raises(KilledError):
        fold_entries(redis, held, "dying", context.config, queue)
    monkeypatch.undo()
    assert (acme_events(redis), redis.xlen(keys.ingest_stream())) == (2, 3)

    claimed = ingest_stream.claim(redis, "alive", 10, idle_ms=0)
    assert fold_entries(redis, claimed, "alive", context.config, queue) == 0
    assert acme_events(redis) == 2
    assert sum(redis.get(keys.daily_metric("globex", "events")) or b"") == 1
    assert redis.xlen(keys.ingest_stream()) == 0
    assert waiting.waiting_accounts(redis) == {"acme", "globex"}


def test_a_consumer_whose_lease_ran_out_writes_only_what_it_still_holds(
    client: Any, redis: Redis, context: Any, webhook_secrets: dict[str, str]
) -> None:
    secret = webhook_secrets[USAGE_SECRET_ENV]
    event = {"account_id": "acme", "user_id": "u1", "event": "login"}
    post_signed(client, "/webhooks/usage", secret, event | {"timestamp": NOW.isoformat()})
    ingest_stream.ensure_group(redis)
    held = ingest_stream.read(redis, "slow", 10, None)
    ended = folding.Lease(ends_ms=1)  # long over: it stalled, and another took the entry over
    assert ingest_stream.claim(redis, "alive", 10, idle_ms=0)
    items = [
        folding.Item(parse_usage([event | {"timestamp": NOW.isoformat()}], NOW, 9)[0], held[0].id)
    ]

    def renew() -> tuple[folding.Lease, frozenset[str]]:
        kept = ingest_stream.hold(redis, "slow", [held[0].id])
        return kept.lease, frozenset({held[0].id}) - kept.ids

    outcome = folding.fold_items(
        redis, items, context.config.metrics, NOW, "usage", 60, ended, renew
    )
    assert (outcome.events, acme_events(redis)) == (0, 0)
    assert fold(redis) == 1
    assert acme_events(redis) == 1


def test_a_redis_failure_at_accept_answers_503_and_stores_nothing(
    client: Any, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    redis.set(keys.ingest_stream(), "in the way")  # the append fails: WRONGTYPE
    body = json.dumps(deliveries()[0]).encode()
    headers = signed_headers(webhook_secrets[USAGE_SECRET_ENV], body)
    answer = client.post("/webhooks/usage", data=body, headers=headers)
    assert answer.status_code == 503
    assert redis.exists(keys.delivery_seen("usage", headers["webhook-id"])) == 0
    redis.delete(keys.ingest_stream())
    assert client.post("/webhooks/usage", data=body, headers=headers).status_code == 202


def test_an_entry_the_fold_cannot_read_is_set_aside_not_retried_forever(
    redis: Redis, context: Any
) -> None:
    ingest_stream.ensure_group(redis)
    redis.xadd(keys.ingest_stream(), {"s": "usage", "t": NOW.timestamp(), "b": "[{]"})
    assert fold(redis) == 0
    assert redis.xlen(keys.ingest_stream()) == 0
    [(_, fields)] = redis.xrange(keys.ingest_dead_letters())
    assert fields[b"b"] == b"[{]"


def test_the_fold_process_folds_what_a_running_web_app_accepted(
    client: Any, redis: Redis, settings: Settings, webhook_secrets: dict[str, str]
) -> None:
    env = {"REDIS_URL": settings.redis_url, "INTEGRATION_CONFIG": str(settings.config)}
    env |= webhook_secrets | {"PATH": "/usr/bin:/bin", "INTEGRATION_LOG_LEVEL": "WARNING"}
    process = subprocess.Popen(  # noqa: S603 - our own argument list, as the Procfile's line
        [sys.executable, "-m", "integration", "fold"], env=env
    )
    try:
        event = {"account_id": "acme", "user_id": "u1", "event": "login"}
        for _ in range(5):
            body = event | {"timestamp": datetime.now(UTC).isoformat()}
            post = post_signed(client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], body)
            assert post.status_code == 202
        deadline = time.monotonic() + 30
        while acme_events(redis) < 5 and time.monotonic() < deadline:
            assert process.poll() is None
            time.sleep(0.05)
        assert acme_events(redis) == 5
        assert redis.xlen(keys.ingest_stream()) == 0
    finally:
        process.terminate()
        assert process.wait(timeout=15) == 0
