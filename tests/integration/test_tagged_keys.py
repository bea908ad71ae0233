"""The evaluation's hand-off keys and held tasks under hash tags, and the move from the old names.

On a Redis Cluster a script or transaction keeps to one slot, so the keys the waiting scripts
touch together share `{ci}` and a held task shares `{held}` with its index. Data written under
the old names is moved by `integration migrate` and, every few seconds, by the sweep.
"""

from __future__ import annotations

from datetime import UTC, date, datetime

from redis import Redis
from redis.cluster import key_slot

from integration.jobs import evaluate as jobs
from integration.jobs.context import Context
from integration.store import caps, keys, layout, renames, waiting

OLD_DIRTY = "ci:dirty_accounts:by_change"
OLD_PROCESSING = "ci:processing_accounts"
OLD_HOLDERS = "ci:processing_holders"
OLD_LEASES = "ci:batch_leases"
OLD_LAST_RUN = "ci:evaluation:last_run"
OLD_HELD = "ci:tasks:held"


def slot(name: str) -> int:
    return int(key_slot(name.encode()))


def test_the_hand_off_keys_share_one_slot_and_a_held_task_shares_its_index_slot() -> None:
    hand_off = {
        keys.dirty_accounts(),
        keys.processing_accounts(),
        keys.processing_holders(),
        keys.batch_leases(),
        keys.evaluation_ran(),
    }
    assert {slot(name) for name in hand_off} == {slot("{ci}")}
    assert slot(keys.held_task("abc")) == slot(keys.tasks_held()) == slot("{held}")


def seed_old_names(redis: Redis) -> None:
    redis.zadd(OLD_DIRTY, {"acme": 0, "globex": 1_700_000_000})
    redis.zadd(OLD_PROCESSING, {"initech": 1_700_000_100})
    redis.hset(OLD_HOLDERS, "initech", "job-1/abc")
    redis.zadd(OLD_LEASES, {"job-1/abc": 1_700_000_115})
    redis.set(OLD_LAST_RUN, 1_700_000_100)
    redis.sadd(keys.legacy_dirty_accounts(), "umbrella")
    redis.zadd(OLD_HELD, {"m1": -80.5, "m2": -40.5})
    redis.set("ci:tasks:held:m1", '{"held_on": "2026-11-30", "task": {"n": 1}}')
    redis.set("ci:tasks:held:m2", '{"held_on": "2026-11-30", "task": {"n": 2}}')


def test_migrate_moves_every_old_name_to_its_tagged_one_and_a_second_run_moves_nothing(
    redis: Redis,
) -> None:
    seed_old_names(redis)
    first = layout.migrate(redis)
    assert first.keys_renamed == 6 + 2  # five hand-off keys, the plain set, two held tasks
    assert redis.zrange(keys.dirty_accounts(), 0, -1, withscores=True) == [
        (b"acme", 0.0),
        (b"umbrella", 0.0),
        (b"globex", 1_700_000_000.0),
    ]
    assert redis.zrange(keys.processing_accounts(), 0, -1) == [b"initech"]
    assert redis.hgetall(keys.processing_holders()) == {b"initech": b"job-1/abc"}
    assert redis.zscore(keys.batch_leases(), "job-1/abc") == 1_700_000_115
    assert redis.get(keys.evaluation_ran()) == b"1700000100"
    assert [member for member, *_ in caps.held(redis, 10)] == ["m1", "m2"]
    old = [OLD_DIRTY, OLD_PROCESSING, OLD_HOLDERS, OLD_LEASES, OLD_LAST_RUN, OLD_HELD]
    old += [keys.legacy_dirty_accounts(), "ci:tasks:held:m1", "ci:tasks:held:m2"]
    assert redis.exists(*old) == 0
    assert layout.migrate(redis).keys_renamed == 0


def test_what_is_under_both_names_is_merged_and_the_newer_entries_kept(redis: Redis) -> None:
    redis.zadd(keys.dirty_accounts(), {"acme": 1_700_000_500})
    redis.zadd(OLD_DIRTY, {"acme": 0, "globex": 0})
    redis.hset(keys.processing_holders(), "initech", "job-2/new")
    redis.hset(OLD_HOLDERS, mapping={"initech": "job-1/old", "hooli": "job-1/old"})
    caps.hold(redis, "task-new", {"n": 3}, 60, date(2026, 12, 1))
    redis.zadd(OLD_HELD, {"m1": -80.5})
    redis.set("ci:tasks:held:m1", '{"held_on": "2026-11-30", "task": {"n": 1}}')
    assert renames.adopt_untagged_keys(redis) == 3
    assert dict(redis.zrange(keys.dirty_accounts(), 0, -1, withscores=True)) == {
        b"acme": 1_700_000_500.0,
        b"globex": 0.0,
    }
    assert redis.hgetall(keys.processing_holders()) == {
        b"initech": b"job-2/new",
        b"hooli": b"job-1/old",
    }
    assert [task for *_, task in caps.held(redis, 10)] == [{"n": 1}, {"n": 3}]


def test_the_sweep_evaluates_an_account_a_previous_release_left_under_the_old_name(
    context: Context, redis: Redis
) -> None:
    waiting.remember_account(redis, "acme")
    redis.zadd(OLD_DIRTY, {"acme": 0})
    assert jobs.sweep_accounts() == 1
    assert redis.exists(OLD_DIRTY) == 0
    assert redis.exists(keys.assessment("acme"))


def test_mark_all_accounts_dirty_keeps_a_settling_account_time(redis: Redis) -> None:
    now = datetime(2026, 12, 1, tzinfo=UTC).timestamp()
    for account in ("acme", "globex"):
        waiting.remember_account(redis, account)
    redis.zadd(keys.dirty_accounts(), {"acme": now})
    assert waiting.mark_all_accounts_dirty(redis) == 2
    assert redis.zscore(keys.dirty_accounts(), "acme") == now
    assert redis.zscore(keys.dirty_accounts(), "globex") == 0
