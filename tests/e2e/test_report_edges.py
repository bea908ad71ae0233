"""`integration report` and control groups (issue 15, items 4 and 5) when the config changes
under running control groups, or a worker is lost between starting runs and writing their
trail. These were found in review (as strict xfails) and are kept as tests: `control: never`
set after runs started treats the accounts it was holding out; a lowered control_pct keeps only
the accounts still inside the new share held out; the runs a lost worker saved are counted
once the evaluation is retried.

Usage drops posted to the web app, evaluations and the step runner given their `now`, the
sandbox CRM and a real Redis (tests/e2e/test_report.py's accounts and world).
"""

from __future__ import annotations

import json
from collections.abc import Callable, Iterable, Iterator

import pytest
from redis import Redis

from integration.cli.history import render_history
from integration.cli.plan import render_plan
from integration.cli.report import render_report
from integration.config.schema import History
from integration.config.settings import Settings
from integration.store import history
from integration.store.history import Event
from playbooks.control import bucket
from tests.e2e.test_report import COMPANIES, HELD_OUT_50, NO_CAPS, PLAYBOOK, TREATED, World
from tests.integration import worlds
from tests.integration.worlds import DROP_60, OWNERS, day, flag

ACCOUNTS = TREATED[:10] + HELD_OUT_50  # at 50%: the ten z- accounts are held out


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., World]]:
    """conftest's sandbox config with these top-level keys replaced; built again, the same
    CRM and Redis with the new config (a restarted worker after the admin's edit)."""
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, [])
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(World, sandbox_seed, **changes)


def half_held_out(make_world: Callable[..., World]) -> World:
    """Twenty usage drops on Monday under control_pct 50: ten treated, ten held out."""
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 50}}, work=NO_CAPS)
    flag(world, day(0), **dict.fromkeys(ACCOUNTS, DROP_60))
    assert sum(world.run(account)["control"] for account in ACCOUNTS) == 10
    assert [len(world.tasks(account)) for account in HELD_OUT_50] == [0] * 10
    return world


def test_marking_a_playbook_control_never_treats_the_accounts_it_was_holding_out(
    make_world: Callable[..., World],
) -> None:
    half_held_out(make_world)

    # The admin decides the check-in is critical: `control: never`, every flagged account
    # treated. The worker restarts with that config; the accounts are still flagged.
    world = make_world(playbooks={PLAYBOOK: {"control": "never"}}, work=NO_CAPS)
    world.run_due_steps(day(1))
    plan = json.loads(render_plan(world.context, HELD_OUT_50, None, as_json=True, now=day(1)))
    world.evaluate(day(1), *ACCOUNTS)
    world.run_due_steps(day(1, 10))

    # Each still-flagged account now gets the rep's check-in, as the playbook says...
    assert [account for account in HELD_OUT_50 if not world.tasks(account)] == []
    # ...which `integration plan` showed beforehand, task for task.
    planned = {
        account["account_id"]: [
            action["subject"] for step in account["steps"] for action in step["actions"]
        ]
        for account in plan["accounts"]
    }
    made = {account: [t.subject for t in world.tasks(account)] for account in HELD_OUT_50}
    assert planned == made


def test_lowering_control_pct_keeps_the_accounts_held_out_within_the_new_share(
    make_world: Callable[..., World],
) -> None:
    half_held_out(make_world)

    # The admin lowers the share to a tenth: at most 2 of the 20 flagged accounts held out.
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 10}}, work=NO_CAPS)
    world.run_due_steps(day(1))
    world.evaluate(day(1), *ACCOUNTS)
    world.run_due_steps(day(1, 10))

    untouched = [account for account in ACCOUNTS if not world.tasks(account)]
    assert len(untouched) <= 2, untouched
    # The account whose stable hash is still inside a tenth stays held out, untouched...
    assert untouched == [a for a in HELD_OUT_50 if bucket(PLAYBOOK, a) < 1000] == ["z-08"]
    # ...and the report counts the switched runs as treated from then on.
    report = json.loads(render_report(world.context, None, as_json=True, now=day(2)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert (usage["fired"], usage["fired_control"]) == (20, 1)
    assert [entry["why"] for entry in _kinds(world, "z-03", "run_treated")] == [
        "control_pct lowered to 10%: the account is outside the share"
    ]
    # ...which the account's history tells an admin in words.
    trail = render_history(world.context, "z-03", limit=100, as_json=False)
    assert (
        f"{PLAYBOOK} leaves its control group, treated from now: control_pct lowered to 10%: "
        "the account is outside the share"
    ) in trail


def test_runs_a_lost_worker_saved_are_counted_once_the_evaluation_is_retried(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 50}}, work=NO_CAPS)
    record = history.record
    lost: list[bool] = []

    def lost_once(redis: Redis, events: Iterable[Event], keep: History) -> None:
        """The worker is killed (a job timeout, a deploy) as it writes the runs' trail."""
        events = list(events)
        if not lost and any(item.kind == "run_started" for item in events):
            lost.append(True)
            msg = "worker lost"
            raise SystemExit(msg)
        record(redis, events, keep)

    monkeypatch.setattr(history, "record", lost_once)
    with pytest.raises(SystemExit):
        flag(world, day(0), **dict.fromkeys(ACCOUNTS, DROP_60))
    monkeypatch.setattr(history, "record", record)

    # RQ retries the evaluation; the runs were saved before the worker went.
    world.evaluate(day(0, 9, 5), *ACCOUNTS)
    world.run_due_steps(day(0, 9, 6))
    assert sum(world.run(account)["control"] for account in ACCOUNTS) == 10

    report = json.loads(render_report(world.context, None, as_json=True, now=day(1)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert (usage["fired"], usage["fired_control"]) == (20, 10)


def _kinds(world: World, account: str, kind: str) -> list[dict[str, object]]:
    """The account's trail entries of this kind."""
    return [dict(item.fields) for item in history.read(world.redis, account) if item.kind == kind]
