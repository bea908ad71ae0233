"""The audit trail (`integration history`) and its outcomes at their edges: a month of steady
usage, entries past keep_days, a dormant account, a task the playbook completed itself or one
completed twice, a completion of unknown duration, --limit after a late webhook or past any
range, a retried evaluation. These were found in review (issue 15) and are kept as tests.
"""

from __future__ import annotations

import json
from collections.abc import Callable
from datetime import UTC, datetime, timedelta

import pytest
from redis import Redis

from integration.config.schema import History
from integration.jobs import evaluate as jobs
from integration.jobs.queues import enqueue_crm_change
from integration.signals.crm_changes import ChangeKind, CrmChange
from integration.store import history, keys
from integration.store.history import Received
from playbooks.report import playbook_figures
from tests.conftest import drain
from tests.e2e.test_outcomes import history_lines, make_world, run_history  # noqa: F401
from tests.integration import worlds
from tests.integration.worlds import DROP_60, RECOVERED, day, flag

NOW = datetime(2026, 12, 7, 9, 0, tzinfo=UTC)


def _kinds(redis: Redis, account_id: str) -> list[str]:
    return [item.kind for item in history.read(redis, account_id)]


# -- bounded: what keep_entries and keep_days promise ------------------------------------------


def test_a_month_of_steady_usage_keeps_the_run_that_made_the_task(redis: Redis) -> None:
    keep = History()  # the defaults: 500 entries, 400 days
    history.record(
        redis,
        [
            history.event(
                "acme", "run_started", NOW, playbook="usage_drop_checkin", trigger_key="usage_drop"
            )
        ],
        keep,
    )
    # A fold consumer writes the account's usage every 10 minutes for 30 days (its hold is 30 s
    # at most: this is fewer writes than a steady sender makes).
    for n in range(1, 30 * 24 * 6):
        at = NOW + timedelta(minutes=10 * n)
        ids = [f"{int(at.timestamp() * 1000)}-0"]
        history.record_received(redis, [Received("acme", "usage", at, 10, ids)], keep)

    # Within keep_days, so `integration history acme` should still say why the task was made.
    assert "run_started" in _kinds(redis, "acme")


def test_entries_older_than_keep_days_are_not_shown(redis: Redis) -> None:
    keep = History(keep_entries=500, keep_days=30)
    old = datetime.now(UTC) - timedelta(days=700)
    for n in range(3):  # written two years ago (stream ids are the server's clock then)
        at = old + timedelta(minutes=n)
        entry = {"kind": "step", "at": at.isoformat(), "playbook": "usage_drop_checkin"}
        redis.xadd(
            keys.history("acme"), {"e": json.dumps(entry)}, id=f"{int(at.timestamp() * 1000)}-0"
        )
    history.record(redis, [history.event("acme", "assessment", NOW, level="none")], keep)

    assert _kinds(redis, "acme") == ["assessment"]


def test_a_dormant_accounts_trail_expires_after_keep_days(redis: Redis) -> None:
    keep = History(keep_entries=500, keep_days=30)
    history.record(redis, [history.event("acme", "assessment", NOW, level="none")], keep)

    ttl = redis.ttl(keys.history("acme"))
    assert 0 < ttl <= 30 * 86400


# -- outcomes: task completed -----------------------------------------------------------------


def test_a_task_the_playbook_completed_itself_is_no_rep_outcome(
    make_world: Callable[..., worlds.World],  # noqa: F811 - the fixture imported above
) -> None:
    world = make_world(
        playbooks={"usage_drop_checkin": {"exit": {"when_trigger_clears": "complete"}}}
    )
    flag(world, day(0), acme=DROP_60)
    [rep, *_] = world.tasks("acme")
    flag(world, day(3), acme=RECOVERED)  # usage recovered: our code completes the task
    assert [t.status for t in world.tasks("acme")] == ["COMPLETED"]

    # The CRM tells every subscriber the task turned completed, our own change included.
    world.complete_in_crm(rep, day(3))

    assert "task_completed" not in _kinds(world.redis, "acme")


def test_a_task_completed_twice_is_one_outcome(
    make_world: Callable[..., worlds.World],  # noqa: F811 - the fixture imported above
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    [rep] = world.tasks("acme")
    world.complete_in_crm(rep, day(1))
    # The same task's completion again, as a CRM sends it: another event, a later time.
    again = CrmChange("sandbox", ChangeKind.TASK_COMPLETED, rep.crm_id, day(2), "second-event")
    assert enqueue_crm_change(world.redis, again)
    drain(world.redis)

    assert _kinds(world.redis, "acme").count("task_completed") == 1


def test_a_completion_of_unknown_duration_does_not_pull_the_median_to_zero() -> None:
    def done(at: datetime, seconds: int | None) -> history.Event:
        return history.event(
            "acme", "task_completed", at, playbook="usage_drop_checkin", seconds=seconds
        )

    trail = [done(NOW, 7200), done(NOW + timedelta(hours=1), None)]
    [figures] = playbook_figures([("acme", trail)], NOW + timedelta(days=60), 30)

    assert figures.median_completion_seconds == 7200


# -- the command ------------------------------------------------------------------------------


def test_limit_shows_the_newest_entries_even_after_a_late_delivery(
    make_world: Callable[..., worlds.World],  # noqa: F811 - the fixture imported above
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    [rep] = world.tasks("acme")
    flag(world, day(3), acme=RECOVERED)
    world.complete_in_crm(rep, day(1))  # completed on day 1, its webhook delivered late

    full = history_lines(world.settings, "acme")
    assert history_lines(world.settings, "acme", "--limit", "1") == full[:1]


def test_a_huge_limit_shows_the_whole_trail(
    make_world: Callable[..., worlds.World],  # noqa: F811 - the fixture imported above
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)

    result = run_history(world.settings, "acme", "--limit", str(10**20))

    assert (result.exit_code, result.stderr) == (0, ""), result.output
    assert result.stdout.splitlines() == history_lines(world.settings, "acme")


# -- evaluation retried -----------------------------------------------------------------------


def test_an_evaluation_retried_records_its_assessment_once(
    make_world: Callable[..., worlds.World],  # noqa: F811 - the fixture imported above
    monkeypatch: pytest.MonkeyPatch,
) -> None:
    world = make_world()
    real_advance = jobs.advance
    calls = {"n": 0}

    def lost_once(*args: object, **kwargs: object) -> None:
        calls["n"] += 1
        if calls["n"] == 1:
            msg = "worker lost"
            raise ConnectionError(msg)  # the job dies after the trail was written
        real_advance(*args, **kwargs)  # type: ignore[arg-type]

    monkeypatch.setattr(jobs, "advance", lost_once)
    with pytest.raises(ConnectionError):
        flag(world, day(0), acme=DROP_60)
    world.evaluate(day(0, 9, 1), "acme")  # RQ's retry

    assert _kinds(world.redis, "acme").count("assessment") == 1
