"""Control-group places in a real Redis, shared by every worker: two workers deciding from the
same counts never both take the last place, and a run another worker started first is not
counted twice."""

from __future__ import annotations

from datetime import date

from integration.config.schema import Config
from integration.jobs.context import Context
from integration.store import control_groups
from integration.store import runs as stored_runs
from playbooks.catalogue import resolve_playbooks
from playbooks.control import ControlCount
from playbooks.engine import Playbook
from playbooks.runs import Run
from playbooks.starts import save_started

MONDAY = date(2026, 11, 23)


def quarter_held_out() -> Playbook:
    raw = {
        "title": "Check in",
        "trigger": {"reasons": ["usage_drop"]},
        "control_pct": 25,
        "steps": [{"name": "call", "actions": [{"task": {"subject": "s", "body": "b"}}]}],
    }
    [book] = resolve_playbooks(Config.model_validate({"playbooks": {"own": raw}}), shipped={})
    return book


def run_for(account_id: str, control: bool) -> Run:
    return Run(
        f"own:{account_id}:usage_drop:2026-11-23",
        "own",
        account_id,
        "usage_drop",
        MONDAY,
        control=control,
    )


def test_two_workers_deciding_from_the_same_counts_never_both_take_the_last_place(
    context: Context,
) -> None:
    book = quarter_held_out()
    for n in range(3):  # three treated runs so far: one place in a quarter is free
        assert save_started(context, run_for(f"t-{n}", False), book, MONDAY, {}) is not None

    # Both workers read (3 started, 0 control) and both ask for the free place.
    stale_a = {"own": ControlCount(3, 0)}
    stale_b = {"own": ControlCount(3, 0)}
    first = save_started(context, run_for("c-1", True), book, MONDAY, stale_a)
    second = save_started(context, run_for("c-2", True), book, MONDAY, stale_b)

    assert first is not None
    assert second is not None
    assert (first.control, first.due_on) == (True, None)  # held out: never due
    assert (second.control, second.due_on) == (False, MONDAY)  # treated after all
    assert control_groups.counts(context.redis) == {"own": (5, 1)}
    assert stale_b == {"own": ControlCount(5, 1)}  # the worker's view caught up


def test_a_run_another_worker_started_first_is_counted_once(context: Context) -> None:
    book = quarter_held_out()
    for n in range(3):
        save_started(context, run_for(f"t-{n}", False), book, MONDAY, {})
    assert save_started(context, run_for("c-1", True), book, MONDAY, {}) is not None

    counts: dict[str, ControlCount] = {}
    assert save_started(context, run_for("c-1", True), book, MONDAY, counts) is None
    assert control_groups.counts(context.redis) == {"own": (4, 1)}
    assert counts == {"own": ControlCount(4, 1)}
    [stored] = stored_runs.load_runs(context.redis, ["c-1"])["c-1"].values()
    assert stored["control"] is True
