"""Working days as the waterfall counts them, runs kept as JSON with their version, and the store
refusing a stale save or a second active run in a slot (against a real Redis)."""

from __future__ import annotations

from datetime import UTC, date, datetime

import pytest
from redis import Redis

from integration.store import runs as stored_runs
from playbooks.runs import Calendar, Run, RunStatus, StepRecord

FRIDAY = date(2026, 12, 4)
SATURDAY = date(2026, 12, 5)
SUNDAY = date(2026, 12, 6)
MONDAY = date(2026, 12, 7)
TUESDAY = date(2026, 12, 8)
WEDNESDAY = date(2026, 12, 9)
THURSDAY = date(2026, 12, 10)
WEEK = Calendar()


@pytest.mark.parametrize(
    ("start", "count", "expected"),
    [
        (SATURDAY, 1, MONDAY),
        (SATURDAY, 0, MONDAY),
        (SUNDAY, 1, MONDAY),
        (SUNDAY, 2, TUESDAY),
        (FRIDAY, 0, FRIDAY),
        (FRIDAY, 1, MONDAY),
        (FRIDAY, 3, WEDNESDAY),
        (MONDAY, 5, date(2026, 12, 14)),
    ],
)
def test_working_days_are_added_from_any_day_of_the_week(
    start: date, count: int, expected: date
) -> None:
    assert WEEK.add_working_days(start, count) == expected


def test_holidays_are_skipped_like_weekends() -> None:
    holidays = Calendar(holidays=frozenset({MONDAY, WEDNESDAY}))
    assert holidays.add_working_days(FRIDAY, 1) == TUESDAY
    assert holidays.add_working_days(FRIDAY, 2) == THURSDAY
    assert holidays.add_working_days(SATURDAY, 0) == TUESDAY
    assert holidays.add_working_days(SATURDAY, 1) == TUESDAY
    assert not holidays.is_working_day(MONDAY)
    assert holidays.next_working_day(SUNDAY) == TUESDAY


def test_a_custom_working_week_is_counted() -> None:
    sunday_to_thursday = Calendar(weekdays=frozenset({6, 0, 1, 2, 3}))
    assert sunday_to_thursday.add_working_days(THURSDAY, 1) == date(2026, 12, 13)  # Sunday
    assert sunday_to_thursday.add_working_days(FRIDAY, 0) == SUNDAY


@pytest.mark.parametrize(
    ("start", "end", "expected"),
    [
        (MONDAY, MONDAY, 0),
        (MONDAY, TUESDAY, 1),
        (FRIDAY, MONDAY, 1),
        (FRIDAY, WEDNESDAY, 3),
        (SATURDAY, MONDAY, 0),  # from a weekend, Monday is the first working day itself
        # add_working_days(SATURDAY, 2) is Tuesday (one and none both land on Monday):
        # counted so, a task held at a weekend keeps its lead time when released.
        (SATURDAY, TUESDAY, 2),
        (WEDNESDAY, MONDAY, 0),  # not later
    ],
)
def test_working_days_between_two_days(start: date, end: date, expected: int) -> None:
    assert WEEK.working_days_between(start, end) == expected


def test_working_days_between_skips_holidays() -> None:
    holidays = Calendar(holidays=frozenset({MONDAY}))
    assert holidays.working_days_between(FRIDAY, TUESDAY) == 1
    assert holidays.working_days_between(FRIDAY, WEDNESDAY) == 2


@pytest.mark.parametrize("count", [0, 1, 2, 3, 5, 8])
@pytest.mark.parametrize("start", [FRIDAY, MONDAY, WEDNESDAY])
def test_adding_then_counting_working_days_agree(start: date, count: int) -> None:
    """A held task's lead time is counted with one and given back with the other."""
    assert WEEK.working_days_between(start, WEEK.add_working_days(start, count)) == count


# -- runs as JSON -------------------------------------------------------------------------------


def a_run(**changes: object) -> Run:
    run = Run(
        "usage_drop_checkin:acme:usage_drop:2026-12-07",
        "usage_drop_checkin",
        "acme",
        "usage_drop",
        MONDAY,
        due_on=THURSDAY,
    )
    for name, value in changes.items():
        run = Run.from_json({**run.to_json(), name: value})
    return run


def test_a_run_keeps_everything_through_json_including_its_version() -> None:
    now = datetime(2026, 12, 7, 9, tzinfo=UTC)
    run = a_run().after_step("rep_task", now, "ran", ("task-1", "held:abc"), THURSDAY)
    run = Run.from_json({**run.to_json(), "version": 7})

    again = Run.from_json(run.to_json())

    assert again == run
    assert again.version == 7
    assert again.tasks == {"rep_task": ("task-1", "held:abc")}
    assert again.steps == (StepRecord("rep_task", now.isoformat(), "ran"),)
    assert (again.next_step, again.due_on, again.status) == (1, THURSDAY, RunStatus.ACTIVE)


def test_an_ended_run_keeps_its_end_through_json() -> None:
    now = datetime(2026, 12, 9, 9, tzinfo=UTC)
    ended = a_run(version=3).ended(RunStatus.CLEARED, now, "the flag cleared")
    again = Run.from_json(ended.to_json())
    assert again == ended
    assert (again.status, again.ended_on, again.due_on, again.version) == (
        RunStatus.CLEARED,
        WEDNESDAY,
        None,
        3,
    )
    assert not again.active
    assert not again.open_to_clear


def test_a_run_stored_before_versions_reads_as_version_0() -> None:
    raw = a_run().to_json()
    del raw["version"]
    assert Run.from_json(raw).version == 0


def test_a_done_run_is_still_open_to_clear() -> None:
    now = datetime(2026, 12, 7, 9, tzinfo=UTC)
    done = a_run().after_step("rep_task", now, "ran", ("task-1",), None)
    assert done.status is RunStatus.DONE
    assert done.open_to_clear
    assert done.open_task_ids({"task-1", "other"}) == ["task-1"]


# -- the store: versioned saves (real Redis) ---------------------------------------------------


def stored(redis: Redis, run: Run) -> Run:
    return Run.from_json(stored_runs.load_runs(redis, [run.account_id])[run.account_id][run.slot])


def test_a_new_run_is_saved_as_version_1_and_scheduled(redis: Redis) -> None:
    run = a_run()
    assert stored_runs.save_run(redis, "acme", run.slot, run.to_json(), None, THURSDAY)
    assert stored(redis, run).version == 1
    assert stored_runs.due_runs(redis, THURSDAY, 10) == [("acme", run.slot)]
    assert stored_runs.due_runs(redis, WEDNESDAY, 10) == []


def test_a_save_from_a_stale_read_is_refused_and_changes_nothing(redis: Redis) -> None:
    run = a_run()
    assert stored_runs.save_run(redis, "acme", run.slot, run.to_json(), None, THURSDAY)
    read_by_both = stored(redis, run)  # version 1, read by two workers
    now = datetime(2026, 12, 10, 9, tzinfo=UTC)

    first = read_by_both.after_step("manager_escalation", now, "ran", ("t-1",), None)
    assert stored_runs.save_run(
        redis, "acme", run.slot, first.to_json(), read_by_both.version, None
    )
    second = read_by_both.ended(RunStatus.CLEARED, now, "the flag cleared")
    assert not stored_runs.save_run(
        redis, "acme", run.slot, second.to_json(), read_by_both.version, None
    )

    kept = stored(redis, run)
    assert (kept.version, kept.status, kept.tasks) == (
        2,
        RunStatus.DONE,
        {"manager_escalation": ("t-1",)},
    )
    # A save from the fresh read goes through, one version on.
    cleared = kept.ended(RunStatus.CLEARED, now, "the flag cleared")
    assert stored_runs.save_run(redis, "acme", run.slot, cleared.to_json(), kept.version, None)
    assert (stored(redis, run).version, stored(redis, run).status) == (3, RunStatus.CLEARED)


def test_a_save_of_a_run_that_is_not_there_is_refused(redis: Redis) -> None:
    run = a_run()
    assert not stored_runs.save_run(redis, "acme", run.slot, run.to_json(), 1, None)
    assert stored_runs.load_runs(redis, ["acme"]) == {"acme": {}}


def test_a_second_active_run_in_a_slot_is_refused_an_ended_one_replaced(redis: Redis) -> None:
    run = a_run()
    assert stored_runs.save_run(redis, "acme", run.slot, run.to_json(), None, THURSDAY)
    # Another worker starts the same slot's run (a duplicate evaluation): refused.
    duplicate = a_run(run_id="usage_drop_checkin:acme:usage_drop:other")
    assert not stored_runs.save_run(redis, "acme", run.slot, duplicate.to_json(), None, MONDAY)
    assert stored(redis, run).run_id == run.run_id

    # Once the run has ended, a new one may take the slot.
    first = stored(redis, run)
    now = datetime(2026, 12, 9, 9, tzinfo=UTC)
    ended = first.ended(RunStatus.CLEARED, now, "the flag cleared")
    assert stored_runs.save_run(redis, "acme", run.slot, ended.to_json(), first.version, None)
    assert stored_runs.save_run(redis, "acme", run.slot, duplicate.to_json(), None, MONDAY)
    assert stored(redis, run).run_id == duplicate.run_id
    assert stored(redis, run).version == 1


def test_a_step_is_claimed_by_one_worker_at_a_time(redis: Redis) -> None:
    run = a_run()
    assert stored_runs.claim_step(redis, run.run_id, 1)
    assert not stored_runs.claim_step(redis, run.run_id, 1)
    assert stored_runs.claim_step(redis, run.run_id, 2)  # another step is another claim
    stored_runs.release_step(redis, run.run_id, 1)
    assert stored_runs.claim_step(redis, run.run_id, 1)
