"""The audit trail as stored: bounded by keep_entries, usage folded into one entry per account
per fold and merged while nothing else happens, kept apart and capped by keep_signals, nothing
older than keep_days read, a held task's release with its CRM record."""

from __future__ import annotations

import json
from collections.abc import Callable, Iterator
from datetime import UTC, datetime, timedelta
from typing import Any

import pytest
from redis import Redis

from integration.config.schema import History
from integration.config.settings import Settings
from integration.jobs.context import Context
from integration.store import history, keys
from integration.store.history import Received
from tests.conftest import USAGE_SECRET_ENV, fold, post_signed, usage_complete_through_yesterday
from tests.integration import worlds
from tests.integration.worlds import COMPANIES, DROP_40, DROP_60, OWNERS, day

KEEP = History(keep_entries=10, keep_days=400)
NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def kinds(redis: Redis, account_id: str) -> list[str]:
    return [item.kind for item in history.read(redis, account_id)]


def test_the_trail_keeps_only_the_newest_keep_entries(redis: Redis) -> None:
    for batch in range(5):
        history.record(
            redis,
            [
                history.event("acme", "step", NOW + timedelta(minutes=batch), n=batch * 5 + i)
                for i in range(5)
            ],
            KEEP,
        )

    assert redis.xlen(keys.history("acme")) == 10
    assert [item.fields["n"] for item in history.read(redis, "acme")] == list(range(24, 14, -1))
    assert [item.fields["n"] for item in history.read(redis, "acme", limit=3)] == [24, 23, 22]


def test_folds_merge_into_one_signal_until_something_else_is_recorded(redis: Redis) -> None:
    def folded(minutes: int, first: int, count: int, events: int) -> None:
        ids = [f"1765098000000-{n}" for n in range(first, first + count)]
        at = NOW + timedelta(minutes=minutes)
        history.record_received(redis, [Received("acme", "usage", at, events, ids)], KEEP)

    folded(0, 0, 3, 30)
    folded(1, 3, 2, 20)
    folded(2, 5, 4, 40)
    [merged] = [item.to_json() for item in history.read(redis, "acme")]
    assert merged == {
        "account_id": "acme",
        "kind": "signal",
        "at": (NOW + timedelta(minutes=2)).isoformat(),
        "since": NOW.isoformat(),
        "source": "usage",
        "folded": True,
        "events": 90,
        "deliveries": 9,
        "delivery_id": "1765098000000-8",
        "delivery_ids": [f"1765098000000-{n}" for n in range(4, 9)],
        "summary": "90 usage event(s) in 9 deliveries",
    }

    history.record(redis, [history.event("acme", "assessment", NOW, level="high")], KEEP)
    folded(3, 9, 1, 7)  # after the assessment: an entry of its own
    folded(70, 10, 1, 5)  # more than an hour after that entry began: another
    found = history.read(redis, "acme")
    assert [(item.kind, item.fields.get("events")) for item in found] == [
        ("signal", 5),
        ("signal", 7),
        ("assessment", None),
        ("signal", 90),
    ]
    assert found[1].fields["summary"] == "7 usage event(s) in 1 delivery"


def test_usage_signals_past_keep_signals_go_and_never_push_out_the_rest(redis: Redis) -> None:
    keep = History(keep_entries=10, keep_signals=10, keep_days=400)
    history.record(redis, [history.event("acme", "run_started", NOW, playbook="p")], keep)
    for hour in range(1, 31):  # an entry each: more than an hour apart
        at = NOW + timedelta(hours=hour * 2)
        ids = [f"{int(at.timestamp() * 1000)}-0"]
        history.record_received(redis, [Received("acme", "usage", at, 1, ids)], keep)

    found = history.read(redis, "acme")
    assert [item.kind for item in found] == ["signal"] * 10 + ["run_started"]
    assert found[0].at == NOW + timedelta(hours=60)
    # What the report reads: the rest of the trail, without the usage signals.
    assert [item.kind for item in history.read_many(redis, ["acme"])["acme"]] == ["run_started"]


def test_entries_written_before_keep_days_are_not_read_before_any_write_trims_them(
    redis: Redis,
) -> None:
    written = datetime.now(UTC) - timedelta(days=40)
    for name in (keys.history("acme"), keys.signal_trail("acme")):
        entry = {"kind": "signal" if "signals" in name else "step", "at": written.isoformat()}
        redis.xadd(name, {"e": json.dumps(entry)}, id=f"{int(written.timestamp() * 1000)}-0")
    keep = History(keep_entries=10, keep_days=30)

    assert history.read(redis, "acme", keep=keep) == []
    assert history.read_many(redis, ["acme"], keep=keep) == {"acme": []}
    assert len(history.read(redis, "acme")) == 2  # no age asked: what is stored


def test_one_delivery_for_two_accounts_is_one_signal_on_each(
    client: Any, context: Context, redis: Redis, webhook_secrets: dict[str, str]
) -> None:
    yesterday = (datetime.now(UTC) - timedelta(days=1)).replace(microsecond=0)
    events = [
        {"account_id": account, "user_id": f"u{n}", "event": "login", "timestamp": stamp}
        for account in ("acme", "globex")
        for n, stamp in enumerate([yesterday.isoformat()] * 3)
    ]
    response = post_signed(client, "/webhooks/usage", webhook_secrets[USAGE_SECRET_ENV], events)
    assert response.status_code == 202
    [(entry_id, _)] = redis.xrange(keys.ingest_stream())
    fold(redis, context.config)

    for account in ("acme", "globex"):
        [signal] = history.read(redis, account)
        assert (signal.kind, signal.fields["events"], signal.fields["delivery_ids"]) == (
            "signal",
            3,
            [keys.text(entry_id)],
        )


# -- a held task going out -----------------------------------------------------------------------


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., worlds.World]]:
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, [])
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(worlds.World, sandbox_seed, **changes)


def test_a_task_held_by_a_cap_is_in_the_trail_held_then_released_with_its_crm_id(
    make_world: Callable[..., worlds.World],
) -> None:
    world = make_world(
        playbooks={"low_license_utilization": {"enabled": False}},
        work={"caps": {"tasks_per_assignee_per_day": 1}},
    )
    world.post_usage("acme", DROP_60)
    world.post_usage("initech", DROP_40)
    usage_complete_through_yesterday(world.redis)
    world.evaluate(day(4), "acme", "initech")
    [held] = [e for e in history.read(world.redis, "initech") if e.kind == "action"]
    assert (held.fields["held"], held.fields["crm_id"], held.fields["url"]) == (True, None, None)

    world.run_due_steps(day(7))  # Monday: the cap lets it go

    [task] = world.tasks("initech")
    released = history.read(world.redis, "initech")[0]
    assert released.to_json() == {
        "account_id": "initech",
        "kind": "action",
        "at": day(7).isoformat(),
        "playbook": "usage_drop_checkin",
        "run_id": held.fields["run_id"],
        "step": "rep_task",
        "action": "task",
        "crm_id": task.crm_id,
        "url": f"sandbox://task/{task.crm_id}",
        "held": False,
        "released": True,
        "subject": task.subject,
    }
    assert world.redis.hget(keys.crm_task("sandbox", task.crm_id), "created_at") == (
        day(7).isoformat().encode()
    )
