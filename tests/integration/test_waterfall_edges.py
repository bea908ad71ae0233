"""The playbook waterfall at its edges, as a rep or an admin would notice them: held tasks whose
flag cleared, runs that finished before their flag cleared, a clear that meets a running step,
a CRM that fails the 'flag cleared' note, steps an admin removed, a template that fails when it
renders, escalations about held tasks, a flag that flaps within a day, a completion during a
step, and held tasks more than a page long.

Usage is posted, signed, to the web app; evaluations and the every-minute step runner are given
their `now`, never slept; CRM changes go through a real RQ worker; Redis is real; the CRM is the
sandbox (a subclass of it where the CRM must fail once).
"""

from __future__ import annotations

from collections.abc import Callable, Iterator, Sequence
from dataclasses import replace
from datetime import datetime, timedelta
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner
from redis import Redis

from adapters.protocol import BatchOutcome, NoteRequest, TaskRequest
from adapters.sandbox.adapter import SandboxCrm
from integration.cli.main import main
from integration.config.settings import Settings
from integration.errors import CrmRetriableError
from integration.store import caps, keys, waiting
from integration.store import runs as stored_runs
from playbooks import held as held_module
from playbooks.exits import end_run
from playbooks.reads import assessments, runs_of
from playbooks.runs import Run, RunStatus
from playbooks.waterfall import CLEAR_RETRY_SECONDS, run_steps
from tests.conftest import usage_complete_through_yesterday
from tests.integration import worlds
from tests.integration.worlds import (
    DROP_40,
    DROP_60,
    LOW_SEATS,
    RECOVERED,
    SEQUENCE,
    day,
    flag,
)

CLEARED_NOTE = "the usage drop flag that started this playbook"

# Ben's manager in the CRM is Max here; two more accounts, one of them Ben's.
OWNERS = [
    {**owner, "manager_id": "mgr-max"} if owner["id"] == "owner-ben" else owner
    for owner in worlds.OWNERS
]
COMPANIES = worlds.COMPANIES | {  # product account id: (CRM id, name, owner)
    "hooli": ("1005", "Hooli", "owner-ben"),
    "wayne": ("1006", "Wayne Enterprises", "owner-ana"),
}
BY_CRM_ID = {crm_id: account for account, (crm_id, _, _) in COMPANIES.items()}
CONTACTS = [  # primary contacts, for the automated touch
    {"id": "2001", "email": "lee@acme.example", "name": "Lee Chen", "company_id": "1001"},
    {"id": "2003", "email": "sam@initech.example", "name": "Sam Roy", "company_id": "1003"},
]


# -- the world: tests/integration/worlds.py, with what these edges look at ---------------------


class World(worlds.World):
    companies = COMPANIES

    def use_crm(self, crm_class: type[SandboxCrm]) -> SandboxCrm:
        """The same sandbox database behind another adapter class (one that fails on cue)."""
        crm = crm_class(self.crm.path, self.crm.match_field, self.crm.facts)
        self.context = replace(self.context, crm=crm)
        return crm

    def companies_of(self, owner: str) -> list[str]:
        """The accounts whose tasks `owner` has, in the order the tasks were made."""
        return [BY_CRM_ID[t.company_id] for t in self.tasks(owner=owner)]

    def runs(self, company: str) -> list[dict[str, Any]]:
        return list(stored_runs.load_runs(self.redis, [company])[company].values())

    def run_object(self, company: str, playbook: str = "usage_drop_checkin") -> Run:
        """The run as a worker reads it (version and all)."""
        [found] = [
            run
            for run in runs_of(self.context, [company])[company].values()
            if run.playbook == playbook
        ]
        return found

    def held(self) -> int:
        """Tasks held by a cap, as `integration report` counts them."""
        return caps.held_count(self.redis)

    def playbook(self, name: str = "usage_drop_checkin") -> Any:
        [found] = [p for p in self.context.playbooks if p.name == name]
        return found


@pytest.fixture
def make_world(
    settings: Settings, webhook_secrets: dict[str, str], redis: Redis
) -> Iterator[Callable[..., World]]:
    """conftest's sandbox config with these top-level keys replaced (playbooks, work, owners),
    on this file's seed. Built again, it is a restarted process on the same CRM and Redis."""
    sandbox_seed = worlds.seed(OWNERS, COMPANIES, CONTACTS)
    with worlds.worlds(settings, webhook_secrets) as open_world:
        yield lambda **changes: open_world(World, sandbox_seed, **changes)


def one_step(**entry: Any) -> dict[str, Any]:
    """The shipped usage-drop playbook without its manager's escalation: the rep's task is its
    one step, so the run is done as soon as that task is made (or held)."""
    tuning = {"tune_steps": {"manager_escalation": {"enabled": False}}}
    return {"usage_drop_checkin": {**tuning, **entry}}


CAP_ONE = {"caps": {"tasks_per_assignee_per_day": 1}}


def forget_waiting(redis: Redis, now: datetime) -> None:
    """Take every account queued for evaluation, as an evaluation run at `now` would."""
    taken = waiting.take_dirty_accounts(redis, 1000, now + timedelta(days=30))
    waiting.finish_accounts(redis, taken)


# == 1. a held task whose flag cleared is never sent ============================================


def test_a_held_task_of_a_finished_run_whose_flag_clears_is_never_sent(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=one_step(), work=CAP_ONE)
    # Ana gets one new task a day: Acme's goes out, Initech's is held for tomorrow.
    flag(world, day(0), acme=DROP_60, initech=DROP_60)
    assert world.companies_of("owner-ana") == ["acme"]
    assert world.held() == 1
    # The one step ran (its task held), so the run is done.
    initech = world.run("initech")
    assert initech["status"] == "done"
    assert [task.startswith("held:") for task in initech["tasks"]["rep_task"]] == [True]

    # Initech's usage recovers that afternoon, before the task goes out.
    flag(world, day(0, 15), initech=RECOVERED)
    assert world.run("initech")["status"] == "cleared"
    assert world.notes("initech") == []  # Ana never had a task to be told about

    # Not released the next working day, nor later; the held count drops to 0.
    for offset in (1, 2, 3, 7, 8):
        world.run_due_steps(day(offset))
        assert world.tasks("initech") == []
        assert world.held() == 0
    assert world.companies_of("owner-ana") == ["acme"]


# == 2. a run that ran its last step, then its flag cleared ====================================


def test_a_finished_run_whose_flag_clears_notes_its_open_task_once_and_ends_cleared(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=one_step())
    flag(world, day(0), acme=DROP_60)
    [task] = world.tasks()
    assert world.run("acme")["status"] == "done"

    flag(world, day(2), acme=RECOVERED)

    [note] = world.notes("acme")
    assert CLEARED_NOTE in note
    assert "1 task(s) from it are still open" in note
    assert world.run("acme")["status"] == "cleared"
    assert world.steps("acme")[-1] == ["exit", day(2).isoformat(), "the flag cleared"]
    assert world.tasks() == [task]  # still open: the rep decides

    # Judged again, and the minute job later: no second note, no new task.
    world.evaluate(day(3), "acme")
    world.evaluate(day(4), "acme")
    for offset in (3, 5, 10):
        assert world.run_due_steps(day(offset)) == 0
    assert len(world.notes("acme")) == 1
    assert world.tasks() == [task]


# == 3. the evaluation clearing a run while a worker holds its step =============================


def test_a_clear_that_meets_a_running_step_is_tried_again_and_the_step_then_runs_nothing(
    make_world: Callable[..., World],
) -> None:
    world = make_world()  # no sequence: the rep's task at once, the manager three days later
    flag(world, day(0), acme=DROP_60)
    [rep] = world.tasks()

    # Thursday: the escalation is due. The minute job has read the run and claimed its step...
    stale = world.run_object("acme")
    assert (stale.next_step, stale.due_on) == (1, day(3).date())
    assert stored_runs.claim_step(world.redis, stale.run_id, stale.next_step)

    # ...when the evaluation finds the usage back. The clear waits for the step.
    assert not end_run(world.context, stale, world.playbook(), RunStatus.CLEARED, day(3), None)
    world.post_usage("acme", RECOVERED)
    forget_waiting(world.redis, day(3))
    world.evaluate(day(3), "acme")

    assert world.run("acme")["status"] == "active"
    assert world.notes("acme") == []
    # The account is put back, to be judged again a minute later (not at once).
    retry_at = day(3).timestamp() + CLEAR_RETRY_SECONDS
    assert world.redis.zscore(keys.dirty_accounts(), "acme") == retry_at
    assert waiting.take_dirty_accounts(world.redis, 10, day(3) + timedelta(seconds=59)) == []
    assert waiting.take_dirty_accounts(world.redis, 10, day(3, 9, 1)) == ["acme"]
    waiting.finish_accounts(world.redis, ["acme"])

    # The claim is gone (the step found nothing to do, or its claim expired): judged again,
    # the run is cleared and the rep's open task gets the note.
    stored_runs.release_step(world.redis, stale.run_id, stale.next_step)
    world.evaluate(day(3, 9, 1), "acme")
    assert world.run("acme")["status"] == "cleared"
    [note] = world.notes("acme")
    assert CLEARED_NOTE in note

    # The minute job, claiming only now with the run it read before the clear, runs nothing:
    # it reads the run again (its version moved) and lets the claim go.
    account = world.crm.find_accounts(["acme"])["acme"]
    judged = assessments(world.context, ["acme"]).get("acme")
    ran = run_steps(world.context, [(stale, world.playbook(), account, judged)], day(3, 9, 2))
    assert ran == 0
    assert not world.redis.exists(keys.step_claim(stale.run_id, stale.next_step))
    assert world.run_due_steps(day(3, 10)) == 0
    assert world.run_due_steps(day(6)) == 0
    assert world.tasks() == [rep]  # no escalation to Mia
    assert world.run("acme")["status"] == "cleared"
    assert [step[0] for step in world.steps("acme")] == ["rep_task", "exit"]
    assert len(world.notes("acme")) == 1


# == 4. the 'flag cleared' note failing once at the CRM =========================================


class NotesDownOnce(SandboxCrm):
    """The sandbox CRM, answering its first note creation (single or batch) with a 503."""

    failures = 1

    def _fail(self, call: str) -> None:
        if NotesDownOnce.failures:
            NotesDownOnce.failures -= 1
            raise CrmRetriableError(self.name, call, "service unavailable", 503)

    def create_note(self, note: NoteRequest) -> str:
        self._fail("create_note")
        return super().create_note(note)

    def create_notes(self, notes: Sequence[NoteRequest]) -> list[BatchOutcome]:
        self._fail("create_notes")
        return super().create_notes(notes)


def test_a_cleared_note_the_crm_fails_once_is_written_once_later_and_the_run_not_lost(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(NotesDownOnce, "failures", 1)
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    [rep] = world.tasks()
    world.use_crm(NotesDownOnce)

    world.post_usage("acme", RECOVERED)
    forget_waiting(world.redis, day(1))
    world.evaluate(day(1), "acme")

    # The CRM failed the note: the run is as it was, and the account is judged again soon.
    assert NotesDownOnce.failures == 0
    assert world.notes("acme") == []
    assert world.run("acme")["status"] == "active"
    assert "acme" in waiting.waiting_accounts(world.redis)

    world.evaluate(day(1, 9, 1), "acme")
    [note] = world.notes("acme")
    assert CLEARED_NOTE in note
    assert world.run("acme")["status"] == "cleared"

    world.evaluate(day(1, 9, 2), "acme")
    for offset in (3, 4):
        assert world.run_due_steps(day(offset)) == 0
    assert len(world.notes("acme")) == 1
    assert world.tasks() == [rep]


# == 5. the admin removes steps from a running playbook =========================================


def test_steps_removed_by_the_admin_end_those_runs_and_the_others_still_run(
    make_world: Callable[..., World],
) -> None:
    with_touch = {"usage_drop_checkin": {"sequence_id": SEQUENCE}}
    world = make_world(playbooks=with_touch)
    flag(world, day(0), acme=DROP_60)  # touch now, rep's task Monday week, manager Thursday
    assert world.run_due_steps(day(7)) == 1
    assert world.companies_of("owner-ana") == ["acme"]
    flag(world, day(3), initech=DROP_60)  # touch now, rep's task next Thursday
    assert world.run("acme")["next_step"] == 2
    assert world.run("initech")["next_step"] == 1
    assert (
        world.run("acme")["due_on"] == world.run("initech")["due_on"] == day(10).date().isoformat()
    )

    # The admin leaves the manager's escalation out, and the service restarts with that.
    without = {
        "usage_drop_checkin": {
            "sequence_id": SEQUENCE,
            "tune_steps": {"manager_escalation": {"enabled": False}},
        }
    }
    restarted = make_world(playbooks=without)
    assert [s.name for s in restarted.playbook().spec.steps] == ["automated_touch", "rep_task"]

    # Thursday's minute: Acme's run (at the step that is gone) ends done; Initech's rep task
    # is made in the same call.
    assert restarted.run_due_steps(day(10)) == 1
    assert restarted.run("acme")["status"] == "done"
    assert restarted.steps("acme")[-1] == [
        "exit",
        day(10).isoformat(),
        "its playbook has no more steps",
    ]
    assert restarted.companies_of("owner-ana") == ["acme", "initech"]
    assert restarted.tasks(owner="mgr-mia") == []
    assert restarted.run("initech")["status"] == "done"  # its last step now
    assert restarted.run_due_steps(day(11)) == 0
    assert stored_runs.count_due(restarted.redis) == 0


# == 6. a template that fails at render time ====================================================

SEAT_WATCH = {
    "usage_drop_checkin": {"enabled": False},
    "low_license_utilization": {"enabled": False},
    # An admin's own playbook: its subject reads a detail only seat reasons carry, so a usage
    # drop (which validate accepts as a trigger of it) fails when the template renders.
    "seat_watch": {
        "title": "Seat watch",
        "trigger": {"reasons": ["usage_drop", "license_utilization"]},
        "steps": [
            {
                "name": "look",
                "actions": [
                    {
                        "task": {
                            "subject": "{{ account.name }}: "
                            "{{ reason.details.seats | round | int }} seats to look at",
                            "body": "Why: {{ reason.text }}",
                        }
                    }
                ],
            }
        ],
    },
}


def test_a_template_failing_at_render_time_costs_only_its_run(
    make_world: Callable[..., World],
) -> None:
    world = make_world(playbooks=SEAT_WATCH)
    world.post_usage("acme", DROP_60)  # a usage drop: no seats in its details
    world.post_usage("umbrella", LOW_SEATS, seats=20)
    world.post_usage("initech", LOW_SEATS, seats=20)
    usage_complete_through_yesterday(world.redis)

    world.evaluate(day(0), "acme", "initech", "umbrella")  # one evaluation, in one batch

    assert sorted(task.subject for task in world.tasks()) == [
        "Initech: 20 seats to look at",
        "Umbrella: 20 seats to look at",
    ]
    acme = world.run("acme", "seat_watch")
    assert acme["status"] == "done"
    [(name, at, why)] = acme["steps"]
    assert (name, at) == ("exit", day(0).isoformat())
    assert why.startswith("template failed")
    assert world.run("umbrella", "seat_watch")["status"] == "done"
    assert world.run_due_steps(day(1)) == 0
    assert world.tasks("acme") == []


def test_validate_names_an_unknown_filter_on_one_line_with_its_yaml_path(
    tmp_path: Path,
) -> None:
    secret = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
    config = {
        "playbooks": {
            "seat_watch": {
                "title": "Seat watch",
                "trigger": {"reasons": ["usage_drop"]},
                "steps": [
                    {
                        "name": "look",
                        "actions": [
                            {
                                "task": {
                                    "subject": "Look at {{ reason.text | nosuchfilter }}",
                                    "body": "Why: {{ reason.text }}",
                                }
                            }
                        ],
                    }
                ],
            }
        }
    }
    path = tmp_path / "config.yaml"
    path.write_text(yaml.safe_dump(config))
    env = {"USAGE_WEBHOOK_SECRET": secret, "JOB_CHANGES_WEBHOOK_SECRET": secret}

    result = CliRunner().invoke(main, ["validate", str(path)], env=env)

    assert result.exit_code == 1
    assert result.output.splitlines() == [
        f"{path}: 1 error(s)",
        "  playbooks.seat_watch.steps[0].actions[0].task.subject: template does not compile "
        "(line 1): No filter named 'nosuchfilter'.",
    ]
    assert "Traceback" not in result.output
    assert result.exception is None or isinstance(result.exception, SystemExit)


# == 7. an escalation about a task still held ===================================================

QUICK_ESCALATION = {"usage_drop_checkin": {"tune_steps": {"manager_escalation": {"after_days": 1}}}}


def held_escalation_world(make_world: Callable[..., World]) -> World:
    """Ana may get one new task a day; her manager's escalation comes a working day after her
    check-in. Monday: Acme's check-in goes out, Initech's is held. Tuesday 08:00 Umbrella
    flags and takes Ana's place for the day (she completes it at once), so Initech's task is
    still held when its escalation falls due at 09:00."""
    world = make_world(playbooks=QUICK_ESCALATION, work=CAP_ONE)
    flag(world, day(0), acme=DROP_60, initech=DROP_60)
    assert world.companies_of("owner-ana") == ["acme"]
    flag(world, day(1, 8), umbrella=DROP_60)
    [umbrella] = world.tasks("umbrella")
    world.complete_in_crm(umbrella, day(1, 8, 30))
    assert world.run("umbrella")["status"] == "completed"

    world.run_due_steps(day(1))

    # Acme's open check-in reaches Mia; Initech's escalation is not planned while Ana has not
    # had the task: it waits a working day.
    assert world.companies_of("mgr-mia") == ["acme"]
    assert world.tasks("initech") == []
    assert world.held() == 1
    initech = world.run("initech")
    assert (initech["status"], initech["next_step"]) == ("active", 1)
    assert initech["due_on"] == day(2).date().isoformat()
    assert [step[0] for step in initech["steps"]] == ["rep_task"]
    return world


def test_an_escalation_waits_while_the_task_it_is_about_is_held(
    make_world: Callable[..., World],
) -> None:
    world = held_escalation_world(make_world)

    # Wednesday: Ana gets Initech's check-in; the escalation waits its working day from now.
    world.run_due_steps(day(2))
    [checkin] = world.tasks("initech", owner="owner-ana")
    assert checkin.status == "NOT_STARTED"
    assert world.held() == 0
    assert world.companies_of("mgr-mia") == ["acme"]
    assert world.run("initech")["tasks"]["rep_task"] == [checkin.crm_id]
    assert world.run("initech")["due_on"] == day(3).date().isoformat()
    # Thursday: still open, so it escalates.
    world.run_due_steps(day(3))
    assert world.companies_of("mgr-mia") == ["acme", "initech"]
    assert [step[0] for step in world.steps("initech")] == ["rep_task", "manager_escalation"]


def test_an_escalation_gives_the_rep_time_with_a_task_released_from_hold(
    make_world: Callable[..., World],
) -> None:
    world = held_escalation_world(make_world)

    world.run_due_steps(day(2))
    [checkin] = world.tasks("initech", owner="owner-ana")

    # The rep has had the task for no time at all: no escalation about it yet.
    assert world.companies_of("mgr-mia") == ["acme"]
    # Ana completes it the next morning: the escalation never comes.
    world.complete_in_crm(checkin, day(3, 8))
    for offset in (3, 4, 7):
        world.run_due_steps(day(offset))
    assert world.companies_of("mgr-mia") == ["acme"]


# == 8. a flag that clears and comes back the same day ==========================================


def test_a_flag_that_returns_the_same_day_after_the_rep_was_told_it_cleared_is_new_work(
    make_world: Callable[..., World],
) -> None:
    # No cooldown: only the same-day rule stands between a flapping flag and a second task.
    world = make_world(playbooks={"usage_drop_checkin": {"cooldown_days": 0}})
    flag(world, day(0), acme=DROP_60)
    [task] = world.tasks()

    flag(world, day(0, 12), acme=RECOVERED)
    assert world.run("acme")["status"] == "cleared"
    assert len(world.notes("acme")) == 1

    # More history arrives for the weeks before (a late backfill): against that normal the
    # last week is down by half again, the same afternoon.
    flag(world, day(0, 15), acme=[20] * 42 + [0] * 7)
    kept = assessments(world.context, ["acme"])["acme"]
    assert "usage_drop" in {reason.code for reason in kept.reasons}

    # The rep was told at noon the flag cleared; it is back: a run of its own, and a task.
    first, second = world.tasks()
    assert first == task
    assert second.subject.startswith("Check in with Acme Analytics")
    [run] = world.runs("acme")  # the slot holds the newest run
    assert run["status"] == "active"
    assert run["run_id"].endswith("#2")
    # Judged again the same afternoon with the flag still up: nothing new.
    flag(world, day(0, 16), acme=[20] * 42 + [0] * 7)
    for offset in (0, 1):
        world.run_due_steps(day(offset, 17))
    assert len(world.tasks()) == 2
    assert len(world.notes("acme")) == 1


# == 9. the rep completing a task while a step of the run is claimed ============================


def test_a_completion_during_a_claimed_step_ends_the_run_completed_at_that_step(
    make_world: Callable[..., World],
) -> None:
    world = make_world()
    flag(world, day(0), acme=DROP_60)
    [rep] = world.tasks()

    # Thursday: the minute job has claimed the escalation when Ana completes her task.
    run = world.run_object("acme")
    assert stored_runs.claim_step(world.redis, run.run_id, run.next_step)
    world.complete_in_crm(rep, day(3))

    assert world.run("acme")["status"] == "active"  # the running step ends it
    assert stored_runs.completion_asked(world.redis, "acme", run.run_id)

    # The step, once on (its claim let go and taken again), completes the run: no escalation.
    stored_runs.release_step(world.redis, run.run_id, run.next_step)
    assert world.run_due_steps(day(3, 9, 1)) == 0
    assert world.run("acme")["status"] == "completed"
    assert world.steps("acme")[-1] == [
        "exit",
        day(3, 9, 1).isoformat(),
        "the rep completed the task",
    ]
    assert world.tasks(owner="mgr-mia") == []
    for offset in (4, 7):
        assert world.run_due_steps(day(offset)) == 0
    assert world.tasks(owner="mgr-mia") == []
    assert world.notes("acme") == []


# == 10. held tasks over more than one page =====================================================


def test_an_assignee_at_their_cap_on_the_first_page_keeps_no_one_elses_held_task_waiting(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(held_module, "HELD_PAGE", 2)
    world = make_world(playbooks=one_step(), work=CAP_ONE)
    # Monday: Ana's three accounts drop 60%, Ben's two 40% (Ana's are the riskier, held first).
    world.post_usage("acme", DROP_60)
    world.post_usage("initech", DROP_60)
    world.post_usage("umbrella", DROP_60)
    world.post_usage("globex", DROP_40)
    world.post_usage("hooli", DROP_40)
    usage_complete_through_yesterday(world.redis)
    world.evaluate(day(0), "acme", "globex", "hooli", "initech", "umbrella")
    assert world.companies_of("owner-ana") == ["acme"]
    assert world.companies_of("owner-ben") == ["globex"]
    assert world.held() == 3
    first_page = caps.held(world.redis, 2)
    assert [held_task["owner_id"] for *_, held_task in first_page] == ["owner-ana"] * 2

    # Tuesday 08:00 Wayne flags and takes Ana's one task of the day.
    flag(world, day(1, 8), wayne=DROP_60)
    assert world.companies_of("owner-ana") == ["acme", "wayne"]

    # 09:00: the first page is Ana's, at her cap; Ben's held task, on the next page, goes out.
    world.run_due_steps(day(1))
    assert world.companies_of("owner-ben") == ["globex", "hooli"]
    assert world.held() == 2

    # Ana's go out one a day.
    world.run_due_steps(day(2))
    assert world.held() == 1
    world.run_due_steps(day(3))
    assert world.held() == 0
    assert sorted(world.companies_of("owner-ana")) == [
        "acme",
        "initech",
        "umbrella",
        "wayne",
    ]


# == a held task whose release the CRM fails once ===============================================


class TasksDownOnce(SandboxCrm):
    """The sandbox CRM, answering its first single task creation with a 503."""

    failures = 1

    def create_task(self, task: TaskRequest) -> str:
        if TasksDownOnce.failures:
            TasksDownOnce.failures -= 1
            raise CrmRetriableError(self.name, "create_task", "service unavailable", 503)
        return super().create_task(task)


def test_a_held_task_whose_release_the_crm_fails_once_goes_out_the_same_day(
    make_world: Callable[..., World], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(TasksDownOnce, "failures", 1)
    world = make_world(playbooks=one_step(), work=CAP_ONE)
    flag(world, day(0), acme=DROP_60, initech=DROP_60)
    assert world.held() == 1
    world.use_crm(TasksDownOnce)

    world.run_due_steps(day(1))  # the CRM answers 503: Initech's task stays held
    assert TasksDownOnce.failures == 0
    assert world.held() == 1
    assert world.tasks("initech") == []

    world.run_due_steps(day(1, 9, 1))  # the CRM is back a minute later
    assert len(world.tasks("initech")) == 1
    assert world.held() == 0
