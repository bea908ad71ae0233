"""Control groups and `integration report` as a CS leader meets them: usage drops posted to the
web app, evaluations and the every-minute step runner given their `now`, the sandbox CRM.

A playbook with control_pct holds that share of its accounts out: they get no task, note or
alert, yet their runs are tracked and cleared like the others, so the report can set the
treated accounts' outcomes against theirs.
"""

from __future__ import annotations

import json
import re
import sqlite3
from collections.abc import Callable, Iterator
from contextlib import closing
from datetime import timedelta

import pytest
from click.testing import CliRunner
from redis import Redis

from adapters.protocol import FieldUpdate
from integration.cli.main import main
from integration.cli.report import render_report
from integration.config.settings import Settings
from integration.store import control_groups
from playbooks.control import bucket
from tests.integration import worlds
from tests.integration.worlds import DROP_60, MONDAY, OWNERS, RECOVERED, day, flag

PLAYBOOK = "usage_drop_checkin"
# Accounts whose hash bucket for the usage-drop playbook (playbooks/control.py) is 5000 or more:
# never in its control group at 25% or 50%. They sort before the z- accounts, so they are judged
# first and the group has room by the time the z- accounts come.
TREATED = [f"a-{n:02d}" for n in (0, 1, 3, 4, 5, 6, 9, 10, 12, 14, 16, 17, 18, 22, 23)]
# Buckets below 2500: held out at 25%.
HELD_OUT_25 = ["z-03", "z-05", "z-08", "z-09", "z-13"]
# Buckets below 5000: held out at 50%.
HELD_OUT_50 = ["z-00", "z-03", "z-05", "z-06", "z-08", "z-09", "z-11", "z-12", "z-13", "z-21"]
EVERY = TREATED + sorted({*HELD_OUT_25, *HELD_OUT_50})
COMPANIES = {
    account: (str(2000 + n), f"Company {account}", "owner-ana") for n, account in enumerate(EVERY)
}
NO_CAPS = {"caps": {"tasks_per_assignee_per_day": None, "tasks_per_account_per_week": None}}


class World(worlds.World):
    companies = COMPANIES

    def alerts(self, account: str) -> list[str]:
        """The CRM notifications (owner alerts) on the account's company."""
        with closing(sqlite3.connect(self.crm.path)) as db:
            rows = db.execute(
                "select title from notifications where company_id = ?",
                (self.companies[account][0],),
            ).fetchall()
        return [title for (title,) in rows]

    def work_for(self, account: str) -> tuple[int, int, int]:
        """(tasks, notes, alerts) the CRM holds for the account."""
        return len(self.tasks(account)), len(self.notes(account)), len(self.alerts(account))

    def cli(self, *args: str) -> str:
        result = CliRunner().invoke(
            main,
            ["report", "--config", str(self.settings.config), *args],
            env={"REDIS_URL": self.settings.redis_url},
        )
        assert result.exit_code == 0, result.output
        return result.output


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., World]]:
    """conftest's sandbox config with these top-level keys replaced, on this file's seed: Ana
    (whose manager in the CRM is Mia) owns every company."""
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, [])
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(World, sandbox_seed, **changes)


def drop(accounts: list[str]) -> dict[str, list[int]]:
    return dict.fromkeys(accounts, DROP_60)


def recovered(accounts: list[str]) -> dict[str, list[int]]:
    return dict.fromkeys(accounts, RECOVERED)


def cells(lines: list[str], playbook: str) -> dict[str, str]:
    """The playbook's row of the report's table, by column (cells are two spaces apart)."""
    [header] = [line for line in lines if line.startswith("playbook ")]
    [row] = [line for line in lines if line.startswith(f"{playbook} ")]
    return dict(zip(re.split(r"\s{2,}", header), re.split(r"\s{2,}", row), strict=True))


def test_the_accounts_as_the_tests_name_them_fall_where_the_hash_puts_them() -> None:
    assert all(bucket(PLAYBOOK, account) >= 5000 for account in TREATED)
    assert all(bucket(PLAYBOOK, account) < 2500 for account in HELD_OUT_25)
    assert all(bucket(PLAYBOOK, account) < 5000 for account in HELD_OUT_50)


def test_a_control_group_of_a_quarter_gets_no_task_note_or_alert_while_the_rest_get_their_work(
    make_world: Callable[..., World],
) -> None:
    world = make_world(
        playbooks={PLAYBOOK: {"control_pct": 25, "notify_owner": True}}, work=NO_CAPS
    )
    accounts = TREATED + HELD_OUT_25
    flag(world, day(0), **drop(accounts))

    # Fifteen treated accounts: the rep's call and an alert to Ana each, at once.
    assert {account: world.work_for(account) for account in TREATED} == dict.fromkeys(
        TREATED, (1, 0, 1)
    )
    # Five held out, a quarter of twenty: nothing in the CRM, but a run tracked all the same.
    assert {account: world.work_for(account) for account in HELD_OUT_25} == dict.fromkeys(
        HELD_OUT_25, (0, 0, 0)
    )
    assert [world.run(account, PLAYBOOK)["control"] for account in accounts] == [False] * 15 + [
        True
    ] * 5
    assert world.run("z-03", PLAYBOOK)["steps"] == []
    assert control_groups.counts(world.redis) == {PLAYBOOK: (20, 5)}

    # Three working days on, the treated tasks still open: the escalations go to Mia, the
    # manager; the control accounts still get nothing.
    world.run_due_steps(day(3))
    assert [len(world.tasks(account)) for account in TREATED] == [2] * 15
    assert {account: world.work_for(account) for account in HELD_OUT_25} == dict.fromkeys(
        HELD_OUT_25, (0, 0, 0)
    )

    # Usage recovers at six treated accounts and one control account: their runs clear alike
    # (a control run has no task to tell about, so no note either).
    flag(world, day(8), **recovered([*TREATED[:6], "z-03"]))
    assert world.run("z-03", PLAYBOOK)["status"] == "cleared"
    assert world.run("a-00", PLAYBOOK)["status"] == "cleared"
    assert world.work_for("z-03") == (0, 0, 0)

    # Forty days on, every account's 30 days have passed: what the CS leader reads.
    report = json.loads(render_report(world.context, None, as_json=True, now=day(40)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert (usage["fired"], usage["fired_treated"], usage["fired_control"]) == (20, 15, 5)
    assert (usage["treated"]["with_outcome"], usage["treated"]["cleared"]) == (15, 6)
    assert (usage["control"]["with_outcome"], usage["control"]["cleared"]) == (5, 1)
    assert usage["treated"]["cleared_share"] == 0.4
    assert usage["control"]["cleared_share"] == 0.2
    assert usage["difference"] is None
    assert usage["verdict"] == (
        "too few accounts to tell (5 with an outcome in the smaller group; 10 needed in each)"
    )

    text = render_report(world.context, None, now=day(40))
    assert (
        "  usage_drop_checkin: treated 6 of 15 (40%), control 1 of 5 (20%): too few accounts "
        "to tell (5 with an outcome in the smaller group; 10 needed in each)"
    ) in text.splitlines()


def test_the_report_sets_treated_against_control_with_its_interval_once_each_has_ten(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 50}}, work=NO_CAPS)
    treated = TREATED[:10]
    flag(world, day(0), **drop(treated + HELD_OUT_50))
    assert sum(world.run(a, PLAYBOOK)["control"] for a in treated + HELD_OUT_50) == 10
    assert [world.work_for(account) for account in HELD_OUT_50] == [(0, 0, 0)] * 10

    # Eight treated accounts recover, two control ones.
    flag(world, day(9), **recovered(treated[:8] + HELD_OUT_50[:2]))

    lines = render_report(world.context, None, now=day(40)).splitlines()
    assert (
        "  usage_drop_checkin: treated 8 of 10 (80%), control 2 of 10 (20%): +60 points, "
        "95% interval +16 to +80 (the playbook helps)"
    ) in lines
    row = cells(lines, PLAYBOOK)
    assert (row["fired"], row["control"], row["cleared"], row["too soon"]) == (
        "20",
        "10",
        "10 of 20 (50%)",
        "0",
    )

    report = json.loads(render_report(world.context, None, as_json=True, now=day(40)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert usage["difference"] == {
        "estimate": pytest.approx(0.6),
        "low": pytest.approx(0.1618, abs=1e-4),
        "high": pytest.approx(0.8027, abs=1e-4),
    }


def test_a_playbook_marked_control_never_treats_every_account_the_sampled_one_holds_out(
    make_world: Callable[..., World],
) -> None:
    # The admin's own urgent playbook on the same reason, marked control: never.
    urgent = {
        "title": "Usage drop, urgent",
        "trigger": {"reasons": ["usage_drop"]},
        "urgent": True,
        "control": "never",
        "steps": [
            {
                "name": "call",
                "actions": [{"task": {"subject": "Urgent: {{ account.name }}", "body": "Call."}}],
            }
        ],
    }
    world = make_world(
        playbooks={PLAYBOOK: {"control_pct": 25}, "usage_drop_urgent": urgent}, work=NO_CAPS
    )
    accounts = TREATED + HELD_OUT_25
    flag(world, day(0), **drop(accounts))

    # Held out of the check-in, never out of the urgent playbook.
    for account in HELD_OUT_25:
        assert [task.subject for task in world.tasks(account)] == [f"Urgent: Company {account}"]
        assert world.run(account, PLAYBOOK)["control"] is True
        assert world.run(account, "usage_drop_urgent")["control"] is False
    assert all(len(world.tasks(account)) == 2 for account in TREATED)

    report = json.loads(world.cli("--json", "--since", MONDAY.isoformat()))
    by_name = {p["playbook"]: p for p in report["playbooks"]}
    assert (
        by_name["usage_drop_urgent"]["fired"],
        by_name["usage_drop_urgent"]["fired_control"],
    ) == (
        20,
        0,
    )
    assert (by_name[PLAYBOOK]["fired"], by_name[PLAYBOOK]["fired_control"]) == (20, 5)
    assert report["api_budget"] is None
    assert report["api_budget_note"] == "API budget: none (the sandbox CRM has no API quota)"


def test_the_report_command_prints_the_table_then_the_sandbox_accounts(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 25}}, work=NO_CAPS)
    flag(world, day(0), **drop(TREATED + HELD_OUT_25))

    lines = world.cli("--since", MONDAY.isoformat()).splitlines()
    assert lines[0].startswith(f"Playbooks since {MONDAY.isoformat()}:")
    row = cells(lines, PLAYBOOK)
    # fired 20, 5 of them control; nothing has cleared and the 30 days are still running.
    assert (row["fired"], row["control"], row["cleared"], row["too soon"]) == ("20", "5", "-", "20")
    assert "API budget: none (the sandbox CRM has no API quota)" in lines
    # Below the table, as the demo shows it: each account with its flags and tasks.
    first = lines.index("API budget: none (the sandbox CRM has no API quota)")
    assert any(line.startswith("Company a-00 (a-00): risk HIGH") for line in lines[first:])
    assert "15 task(s) and 0 note(s) in the sandbox CRM" in "\n".join(lines[first:])

    # Nothing started before --since counts.
    after = world.cli("--since", (MONDAY + timedelta(days=1)).isoformat()).splitlines()
    assert "(no playbook has started a run in this period)" in after


def test_the_report_counts_steps_completed_tasks_and_what_the_caps_held(
    make_world: Callable[..., World],
) -> None:
    # Ana takes at most eight new tasks a day.
    caps = {"caps": {"tasks_per_assignee_per_day": 8, "tasks_per_account_per_week": None}}
    world = make_world(playbooks={PLAYBOOK: {"control_pct": 50}}, work=caps)
    treated = TREATED[:10]
    flag(world, day(0), **drop(treated + HELD_OUT_50))
    assert len(world.tasks()) == 8  # two held back by the cap until tomorrow
    world.run_due_steps(day(1))
    assert len(world.tasks()) == 10

    # Ana completes four of Monday's calls on Wednesday afternoon, 54 hours after they came.
    for task in world.tasks()[:4]:
        world.complete_in_crm(task, day(2, 15))
    # Thursday: Monday's four calls still open escalate to Mia (Tuesday's two wait a day more).
    world.run_due_steps(day(3))
    assert len(world.tasks()) == 14

    report = json.loads(render_report(world.context, None, as_json=True, now=day(4)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert (usage["fired"], usage["fired_control"]) == (20, 10)
    assert usage["steps_run"] == 14  # ten calls, four escalations
    assert (usage["tasks_completed"], usage["median_completion_seconds"]) == (4, 54 * 3600)
    assert usage["tasks_held"] == 2
    row = cells(render_report(world.context, None, now=day(4)).splitlines(), PLAYBOOK)
    assert (row["steps run"], row["tasks done"], row["median to done"], row["held by caps"]) == (
        "14",
        "4",
        "2.2 days",
        "2",
    )


def test_renewals_recorded_after_a_run_started_are_counted_for_its_playbook(
    make_world: Callable[..., World],
) -> None:
    world = make_world(account_facts={"renewal_status": "renewal_stage"}, work=NO_CAPS)
    accounts = TREATED[:4]
    for account in accounts:
        world.crm.write_fields([FieldUpdate(COMPANIES[account][0], {"renewal_stage": "Open"})])
    flag(world, day(0), **drop(accounts))

    # Three weeks on, one renewal closes won and one lost; two are still open.
    world.crm.write_fields([FieldUpdate(COMPANIES["a-00"][0], {"renewal_stage": "Closed Won"})])
    world.crm.write_fields([FieldUpdate(COMPANIES["a-01"][0], {"renewal_stage": "Closed Lost"})])
    world.evaluate(day(21), *accounts)

    report = json.loads(render_report(world.context, None, as_json=True, now=day(40)))
    [usage] = [p for p in report["playbooks"] if p["playbook"] == PLAYBOOK]
    assert (usage["all"]["renewed"], usage["all"]["churned"]) == (1, 1)
    lines = render_report(world.context, None, now=day(40)).splitlines()
    assert "Renewals recorded after a run started:" in lines
    assert f"  {PLAYBOOK}: 1 renewed, 1 churned" in lines
