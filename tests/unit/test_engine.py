"""The playbook engine, pure: which runs a change in an account's risk starts or ends, and what
each step of a run plans (guards, due dates in working days, routing, channels, idempotency).

Playbooks here are written as an admin would write them in config.yaml and resolved through
the catalogue, so every one of them is a playbook `integration validate` accepts."""

from __future__ import annotations

from dataclasses import replace
from datetime import UTC, date, datetime, timedelta
from typing import Any

import pytest

from adapters.protocol import CrmAccount
from integration.config.schema import Config
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.trends import Trend
from playbooks.actions import (
    CreateNote,
    CreateTask,
    EnrollInSequence,
    SendEmail,
    SendSlack,
    UpdateField,
)
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import (
    Playbook,
    conditions_hold,
    newly_triggered,
    runs_to_clear,
    runs_to_start,
    trigger_holds,
)
from playbooks.planning import StepInputs, people_involved, plan_step
from playbooks.runs import Calendar, Run, RunStatus
from playbooks.templates import compile_template as template
from playbooks.templates import problems, render_line, render_text, sentence_breaks

MONDAY = date(2026, 11, 23)
FRIDAY = date(2026, 11, 27)
NEXT_MONDAY = date(2026, 11, 30)
NEXT_WEDNESDAY = date(2026, 12, 2)
NEXT_THURSDAY = date(2026, 12, 3)
ACCOUNT = "acct-1"


# -- building blocks: reasons as the rules word them, assessments, accounts, playbooks ----------


def drop(pct: int = 60, severity: RiskLevel = RiskLevel.HIGH) -> Reason:
    observed = round(10 * (100 - pct) / 100, 1)
    return Reason(
        "usage_drop",
        "usage_drop",
        f"Daily active users fell {pct}% below their 4-week normal ({observed} vs 10.0 a day) "
        "over the last 7 days.",
        severity,
        {
            "metric": "active_users",
            "observed": observed,
            "baseline": 10.0,
            "drop_pct": float(pct),
            "window_days": 7,
        },
    )


def nps() -> Reason:
    return Reason(
        "nps_detractor",
        "nps_detractor",
        "2 of 4 NPS responses in the last 30 days were detractors (a score of 6 or less).",
        RiskLevel.MEDIUM,
        {"metric": "nps_detractors", "observed": 2, "responses": 4, "window_days": 30},
    )


def inactive() -> Reason:
    return Reason(
        "inactivity",
        "inactivity",
        "No one at the account has used the product for 16 days (last activity 2026-11-07).",
        RiskLevel.HIGH,
        {"metric": "active_users", "observed": 16, "threshold": 14},
    )


def champion_left(
    name: str = "Priya Natarajan", email: str | None = "priya@acme.example"
) -> Reason:
    details: dict[str, Any] = {"person": name, "source": "clay", "previous_title": "Director"}
    if email:
        details["email"] = email
    return Reason(
        "champion_left",
        f"champion_left:{email or name}",
        f"Champion {name}, Director, left the account for Umbrella Corp.",
        RiskLevel.HIGH,
        details,
    )


def decision_maker(name: str = "Kim Park", email: str = "kim@acme.example") -> Reason:
    return Reason(
        "new_decision_maker",
        f"new_decision_maker:{email}",
        f"{name} was promoted to VP Operations (reported by clay on 2026-11-20): "
        "a new decision-maker to meet.",
        RiskLevel.LOW,
        {"person": name, "email": email, "new_title": "VP Operations", "source": "clay"},
    )


def assessment(
    *reasons: Reason, level: RiskLevel | None = None, trends: dict[str, Trend] | None = None
) -> RiskAssessment:
    rank = [RiskLevel.NONE, RiskLevel.LOW, RiskLevel.MEDIUM, RiskLevel.HIGH]
    worst = max((r.severity for r in reasons), key=rank.index, default=RiskLevel.NONE)
    return RiskAssessment(
        ACCOUNT,
        level or worst,
        min(100, 35 * len(reasons)),
        tuple(reasons),
        None,
        None,
        None,
        trends or {},
    )


def account(owner: str | None = "owner-1", **facts: str) -> CrmAccount:
    return CrmAccount("crm-1", "Acme Corp", owner, ACCOUNT, "acme.example", facts)


def playbooks(config: dict[str, Any] | None = None, **entries: dict[str, Any]) -> list[Playbook]:
    """The admin's own playbooks, resolved as `integration validate` would (no shipped ones)."""
    raw = {**(config or {}), "playbooks": entries}
    return resolve_playbooks(Config.model_validate(raw), shipped={})


def playbook(config: dict[str, Any] | None = None, **entry: Any) -> Playbook:
    entry.setdefault("title", "Check in")
    entry.setdefault("trigger", {"reasons": ["usage_drop"]})
    entry.setdefault("steps", [task_step("check_in")])
    [resolved] = playbooks(config, own=entry)
    return resolved


def task_step(name: str, after_days: int = 0, **task: Any) -> dict[str, Any]:
    only_if = task.pop("only_if", ["trigger_holds"])
    body = {
        "subject": "Check in with {{ account.name }}",
        "body": "Why: {{ reason.text }}\nSuggested next step: call them.",
        **task,
    }
    return {"name": name, "after_days": after_days, "only_if": only_if, "actions": [{"task": body}]}


def start(
    playbook: Playbook,
    after: RiskAssessment,
    before: RiskAssessment | None = None,
    runs: dict[str, Run] | None = None,
    crm: CrmAccount | None = None,
    today: date = MONDAY,
) -> list[Run]:
    return runs_to_start(before, after, crm or account(), [playbook], runs or {}, today)


def inputs(today: date = MONDAY, **overrides: Any) -> StepInputs:
    values: dict[str, Any] = {
        "today": today,
        "calendar": Calendar(),
        "routes": {"owner": "owner-1"},
        "fallback_owner": "fallback-9",
    }
    return StepInputs(**(values | overrides))


def first_run(playbook: Playbook, after: RiskAssessment, today: date = MONDAY) -> Run:
    [run] = start(playbook, after, today=today)
    return run


def at_step(run: Run, index: int) -> Run:
    return replace(run, next_step=index)


def tasks(actions: list[Any]) -> list[CreateTask]:
    return [action for action in actions if isinstance(action, CreateTask)]


# -- runs_to_start ------------------------------------------------------------------------------


def test_a_reason_newly_raised_starts_one_run_for_its_playbook() -> None:
    book = playbook()
    runs = start(book, assessment(drop(), nps()), before=assessment(nps()))
    assert len(runs) == 1
    [run] = runs
    assert (run.playbook, run.account_id, run.trigger_key) == ("own", ACCOUNT, "usage_drop")
    assert run.active
    assert run.next_step == 0
    assert run.started_on == MONDAY
    assert run.due_on == MONDAY


def test_each_newly_raised_trigger_key_starts_its_own_run() -> None:
    book = playbook(trigger={"reasons": ["champion_left"]})
    priya, omar = champion_left(), champion_left("Omar Diaz", "omar@acme.example")
    runs = start(book, assessment(priya, omar))
    assert sorted(run.trigger_key for run in runs) == sorted([priya.key, omar.key])
    assert len({run.run_id for run in runs}) == 2


def test_a_reason_already_flagged_before_starts_nothing() -> None:
    book = playbook()
    assert start(book, assessment(drop(), nps()), before=assessment(drop(70))) == []


def test_a_reason_the_playbook_does_not_trigger_on_starts_nothing() -> None:
    assert start(playbook(), assessment(nps(), inactive())) == []


def test_an_active_run_for_the_same_trigger_starts_nothing_and_an_ended_one_does_not_block() -> (
    None
):
    book = playbook()
    run = first_run(book, assessment(drop()), today=MONDAY - timedelta(days=20))
    raised_again = assessment(drop())
    assert start(book, raised_again, runs={run.slot: run}) == []
    cleared = run.ended(RunStatus.CLEARED, datetime(2026, 11, 10, tzinfo=UTC), "cleared")
    assert len(start(book, raised_again, runs={cleared.slot: cleared})) == 1


def test_a_playbook_cooling_down_does_not_start_again_until_the_cooldown_is_over() -> None:
    book = playbook(cooldown_days=14)
    earlier = first_run(book, assessment(drop()), today=MONDAY - timedelta(days=10))
    ended = earlier.ended(RunStatus.CLEARED, datetime(2026, 11, 15, tzinfo=UTC), "cleared")
    assert start(book, assessment(drop()), runs={ended.slot: ended}) == []
    later = MONDAY + timedelta(days=30)
    assert len(start(book, assessment(drop()), runs={ended.slot: ended}, today=later)) == 1


def test_cooldown_counts_from_when_the_last_run_started() -> None:
    """At most one run in cooldown_days: a run that started 40 days ago and ended yesterday
    leaves a 14-day cooldown over, so a raise today starts a new run."""
    book = playbook(cooldown_days=14)
    long_ago = first_run(book, assessment(drop()), today=MONDAY - timedelta(days=40))
    ended_yesterday = long_ago.ended(
        RunStatus.CLEARED, datetime(2026, 11, 22, 12, tzinfo=UTC), "the trigger cleared"
    )
    assert len(start(book, assessment(drop()), runs={ended_yesterday.slot: ended_yesterday})) == 1


def test_a_cooldown_allows_one_run_even_when_two_triggers_arrive_together() -> None:
    book = playbook(trigger={"reasons": ["usage_drop", "nps_detractor"]}, cooldown_days=14)
    one_day_apart = start(book, assessment(drop()))
    assert start(book, assessment(drop(), nps()), runs={r.slot: r for r in one_day_apart}) == []
    assert len(start(book, assessment(drop(), nps()))) == 1


CONDITION_CASES: list[tuple[dict[str, Any], dict[str, Any], bool]] = [
    ({"segments": ["enterprise"]}, {"segment": "enterprise"}, True),
    ({"segments": ["enterprise"]}, {"segment": "smb"}, False),
    ({"segments": ["enterprise"]}, {}, False),
    ({"plans": ["pro", "team"]}, {"plan": "team"}, True),
    ({"plans": ["pro", "team"]}, {"plan": "free"}, False),
    ({"renewal_within_days": 90}, {"renewal_date": "2027-01-15"}, True),
    ({"renewal_within_days": 90}, {"renewal_date": "2027-01-15T00:00:00Z"}, True),
    ({"renewal_within_days": 30}, {"renewal_date": "2027-01-15"}, False),
    ({"renewal_within_days": 90}, {"renewal_date": "2026-10-01"}, False),
    ({"renewal_within_days": 90}, {"renewal_date": "next spring"}, False),
    ({"renewal_within_days": 90}, {}, False),
    ({"fields": [{"field": "industry", "equals": "Retail"}]}, {"industry": "retail"}, True),
    ({"fields": [{"field": "industry", "equals": "Retail"}]}, {"industry": "Banking"}, False),
    ({"fields": [{"field": "industry", "not_equals": "Retail"}]}, {"industry": "Banking"}, True),
    ({"fields": [{"field": "industry", "not_equals": "Retail"}]}, {}, True),
    ({"fields": [{"field": "industry", "one_of": ["retail", "food"]}]}, {"industry": "Food"}, True),
    ({"fields": [{"field": "industry", "one_of": ["retail", "food"]}]}, {}, False),
    ({"fields": [{"field": "arr", "above": 50000}]}, {"arr": "120000"}, True),
    ({"fields": [{"field": "arr", "above": 50000}]}, {"arr": "50000"}, False),
    ({"fields": [{"field": "arr", "below": 50000}]}, {"arr": "9000.5"}, True),
    ({"fields": [{"field": "arr", "below": 50000}]}, {"arr": "unknown"}, False),
    ({"fields": [{"field": "arr", "below": 50000}]}, {}, False),
    ({"fields": [{"field": "industry", "present": True}]}, {"industry": "Retail"}, True),
    ({"fields": [{"field": "industry", "present": True}]}, {"industry": ""}, False),
    ({"fields": [{"field": "industry", "present": False}]}, {}, True),
    (
        {"fields": [{"field": "arr", "above": 1}, {"field": "industry", "equals": "retail"}]},
        {"arr": "5", "industry": "banking"},
        False,
    ),
]


@pytest.mark.parametrize(("conditions", "facts", "holds"), CONDITION_CASES)
def test_conditions_on_the_accounts_crm_facts(
    conditions: dict[str, Any], facts: dict[str, str], holds: bool
) -> None:
    mapped = {
        "account_facts": {
            "segment": "Segment__c",
            "plan": "Plan__c",
            "renewal_date": "Renewal__c",
            "extra": {"industry": "Industry", "arr": "ARR__c"},
        }
    }
    book = playbook(mapped, conditions=conditions)
    after = assessment(drop())
    assert conditions_hold(book.spec.conditions, after, account(**facts), MONDAY) is holds
    assert len(start(book, after, crm=account(**facts))) == (1 if holds else 0)


@pytest.mark.parametrize(
    ("conditions", "reasons", "level", "owner", "holds"),
    [
        ({"reasons_present": ["nps_detractor"]}, [drop(), nps()], None, "o", True),
        ({"reasons_present": ["nps_detractor"]}, [drop()], None, "o", False),
        ({"reasons_absent": ["inactivity"]}, [drop(), nps()], None, "o", True),
        ({"reasons_absent": ["inactivity"]}, [drop(), inactive()], None, "o", False),
        ({"risk_level_at_least": "medium"}, [drop(severity=RiskLevel.MEDIUM)], None, "o", True),
        ({"risk_level_at_least": "high"}, [drop(severity=RiskLevel.MEDIUM)], None, "o", False),
        ({"risk_level_at_least": "high"}, [drop()], RiskLevel.HIGH, "o", True),
        ({"owner_present": True}, [drop()], None, "o", True),
        ({"owner_present": True}, [drop()], None, None, False),
        ({"owner_present": False}, [drop()], None, None, True),
        ({"owner_present": False}, [drop()], None, "o", False),
    ],
)
def test_conditions_on_the_assessment_and_the_owner(
    conditions: dict[str, Any],
    reasons: list[Reason],
    level: RiskLevel | None,
    owner: str | None,
    holds: bool,
) -> None:
    book = playbook(conditions=conditions)
    after = assessment(*reasons, level=level)
    assert len(start(book, after, crm=account(owner))) == (1 if holds else 0)


def test_a_risk_level_trigger_fires_once_when_the_level_is_reached_from_below() -> None:
    book = playbook(trigger={"risk_level": "medium"})
    low, medium, high = (
        assessment(drop(), level=RiskLevel.LOW),
        assessment(drop(), level=RiskLevel.MEDIUM),
        assessment(drop(), level=RiskLevel.HIGH),
    )
    [run] = start(book, high, before=low)
    assert run.trigger_key == "level:medium"
    assert len(start(book, medium, before=None)) == 1  # the first assessment of the account
    assert start(book, high, before=medium) == []  # already there
    assert start(book, high, before=high) == []
    assert start(book, low, before=high) == []  # going down
    assert start(book, low, before=None) == []  # never reached


def test_a_level_trigger_key_holds_while_the_level_stays_at_or_above_it() -> None:
    book = playbook(trigger={"risk_level": "medium"})
    [run] = start(book, assessment(drop(), level=RiskLevel.HIGH), before=None)
    assert trigger_holds(run, assessment(drop(), level=RiskLevel.MEDIUM))
    assert not trigger_holds(run, assessment(drop(), level=RiskLevel.LOW))
    assert not trigger_holds(run, None)


def test_newly_triggered_names_only_the_new_keys() -> None:
    trigger = playbook(trigger={"reasons": ["champion_left"]}).spec.trigger
    priya, omar = champion_left(), champion_left("Omar Diaz", "omar@acme.example")
    assert newly_triggered(trigger, assessment(priya), assessment(priya, omar)) == [omar.key]


def test_runs_whose_trigger_cleared_are_the_ones_to_clear() -> None:
    book = playbook(trigger={"reasons": ["usage_drop", "nps_detractor"]})
    drop_run, nps_run = start(book, assessment(drop(), nps()))
    # A run that ran all its steps is cleared too (its tasks may still be open: the rep is
    # told); one that ended as cleared or completed has been dealt with already.
    done = replace(nps_run, run_id="done", status=RunStatus.DONE)
    told = replace(nps_run, run_id="told", status=RunStatus.CLEARED)
    completed = replace(nps_run, run_id="completed", status=RunStatus.COMPLETED)
    cleared = runs_to_clear([drop_run, nps_run, done, told, completed], assessment(drop()))
    assert cleared == [nps_run, done]


# -- plan_step: guards ---------------------------------------------------------------------------


def test_a_step_whose_trigger_no_longer_holds_is_skipped_with_why() -> None:
    book = playbook()
    run = first_run(book, assessment(drop()))
    plan = plan_step(book, run, assessment(nps()), account(), inputs())
    assert plan.actions == []
    assert plan.next_due is None
    assert plan.skipped is not None
    assert "trigger" in plan.skipped


def test_an_escalation_waits_on_the_previous_task_still_being_open() -> None:
    book = playbook(
        steps=[
            task_step("check_in"),
            task_step("escalate", 3, assignee="manager", only_if=["previous_task_open"]),
        ]
    )
    run = at_step(first_run(book, assessment(drop())), 1)
    done = plan_step(book, run, assessment(drop()), account(), inputs(previous_task_open=False))
    assert done.actions == []
    assert done.next_due is None
    assert done.skipped is not None
    assert "previous step's task" in done.skipped
    still_open = plan_step(book, run, assessment(drop()), account(), inputs())
    assert still_open.skipped is None
    assert [task.step for task in tasks(still_open.actions)] == ["escalate"]


def test_without_the_trigger_guard_a_step_runs_on_while_its_reason_holds() -> None:
    book = playbook(
        steps=[task_step("check_in"), task_step("follow_up", 2, only_if=["previous_task_open"])]
    )
    run = at_step(first_run(book, assessment(drop())), 1)
    plan = plan_step(book, run, assessment(drop(50)), account(), inputs())
    assert plan.skipped is None
    assert "50%" in tasks(plan.actions)[0].body  # the reason as it reads now


# -- plan_step: working days -------------------------------------------------------------------


def three_steps() -> Playbook:
    return playbook(
        steps=[
            task_step("check_in", due_in_days=1),
            task_step("escalate", 3, only_if=["trigger_holds", "previous_task_open"]),
        ]
    )


def test_the_next_step_is_due_in_working_days_friday_plus_three_is_wednesday() -> None:
    book = three_steps()
    run = first_run(book, assessment(drop()), today=FRIDAY)
    plan = plan_step(book, run, assessment(drop()), account(), inputs(FRIDAY))
    assert plan.next_due == NEXT_WEDNESDAY
    assert tasks(plan.actions)[0].due_date == NEXT_MONDAY  # due in one working day


def test_holidays_are_not_working_days() -> None:
    book = three_steps()
    run = first_run(book, assessment(drop()), today=FRIDAY)
    calendar = Calendar(holidays=frozenset({NEXT_MONDAY}))
    plan = plan_step(book, run, assessment(drop()), account(), inputs(FRIDAY, calendar=calendar))
    assert plan.next_due == NEXT_THURSDAY
    assert tasks(plan.actions)[0].due_date == NEXT_MONDAY + timedelta(days=1)


def test_the_last_step_ends_the_run() -> None:
    book = three_steps()
    run = at_step(first_run(book, assessment(drop())), 1)
    assert plan_step(book, run, assessment(drop()), account(), inputs()).next_due is None


def test_a_calendar_counts_only_its_working_days() -> None:
    saturday = FRIDAY + timedelta(days=1)
    week = Calendar()
    assert week.add_working_days(saturday, 0) == NEXT_MONDAY
    assert week.add_working_days(FRIDAY, 0) == FRIDAY
    assert week.add_working_days(FRIDAY, 1) == NEXT_MONDAY
    sunday_to_thursday = Calendar(weekdays=frozenset({6, 0, 1, 2, 3}))
    assert sunday_to_thursday.add_working_days(date(2026, 11, 26), 1) == date(2026, 11, 29)


# -- plan_step: routing --------------------------------------------------------------------------


@pytest.mark.parametrize(
    ("assignee", "routes", "fallback", "expected"),
    [
        ("owner", {"owner": "ana"}, "fb", "ana"),
        ("owner", {"owner": None}, "fb", "fb"),
        ("csm", {"owner": "ana", "csm": "carl"}, "fb", "carl"),
        ("csm", {"owner": "ana", "csm": None}, "fb", "ana"),
        ("csm", {"owner": "ana"}, "fb", "ana"),
        ("csm", {"owner": None, "csm": None}, "fb", "fb"),
        ("ae", {"owner": "ana", "ae": "abe"}, "fb", "abe"),
        ("ae", {"owner": "ana", "ae": None}, "fb", "ana"),
        ("ae", {}, "fb", "fb"),
        ("manager", {"owner": "ana", "manager": "mia"}, "fb", "mia"),
        ("manager", {"owner": "ana", "manager": None}, "fb", "fb"),
        ("user:lee@acme.example", {"owner": "ana"}, "fb", "lee@acme.example"),
        ("owner", {"owner": None}, None, None),
    ],
)
def test_work_goes_to_the_named_route_then_the_owner_then_the_fallback_owner(
    assignee: str, routes: dict[str, str | None], fallback: str | None, expected: str | None
) -> None:
    book = playbook(steps=[task_step("check_in", assignee=assignee)])
    run = first_run(book, assessment(drop()))
    step_inputs = inputs(routes=routes, fallback_owner=fallback)
    plan = plan_step(book, run, assessment(drop()), account(), step_inputs)
    assert [task.owner_id for task in tasks(plan.actions)] == [expected]


# -- plan_step: sequences, channels and other actions ----------------------------------------


def sequence_playbook(contact: str, sequence_id: str | None, trigger: str) -> Playbook:
    sequence: dict[str, Any] = {"contact": contact, "assignee": "csm"}
    if sequence_id:
        sequence["sequence_id"] = sequence_id
    return playbook(
        trigger={"reasons": [trigger]},
        steps=[{"name": "touch", "actions": [{"sequence": sequence}, {"note": {"body": "x."}}]}],
    )


def test_a_shipped_sequence_without_an_id_enrolls_nobody() -> None:
    """champion_left_multithread ships its intro sequence without an id: until the admin sets
    one, the step makes its task and note and enrolls nobody."""
    [book] = [b for b in resolve_playbooks(Config()) if b.name == "champion_left_multithread"]
    run = first_run(book, assessment(champion_left()))
    plan = plan_step(book, run, assessment(champion_left()), account(), inputs())
    assert [type(action) for action in plan.actions] == [CreateTask, CreateNote]


def test_a_sequence_enrolls_the_signals_person_by_email_with_a_task_to_fall_back_on() -> None:
    book = sequence_playbook("signal_person", "seq-7", "champion_left")
    priya = champion_left()
    run = first_run(book, assessment(priya))
    step_inputs = inputs(routes={"owner": "ana", "csm": "carl"})
    [enroll, _] = plan_step(book, run, assessment(priya), account(), step_inputs).actions
    assert isinstance(enroll, EnrollInSequence)
    assert (enroll.sequence_id, enroll.contact_email) == ("seq-7", priya.details["email"])
    assert enroll.owner_id == "carl"  # sent as the assignee
    assert enroll.fallback.owner_id == "carl"
    assert "seq-7" in enroll.fallback.subject
    assert "Priya Natarajan" in enroll.fallback.subject
    assert enroll.fallback.idempotency_key != enroll.idempotency_key


def test_a_signal_person_without_an_email_cannot_be_enrolled() -> None:
    book = sequence_playbook("signal_person", "seq-7", "champion_left")
    nameless = champion_left(email=None)
    run = first_run(book, assessment(nameless))
    plan = plan_step(book, run, assessment(nameless), account(), inputs())
    assert not [a for a in plan.actions if isinstance(a, EnrollInSequence)]


def test_the_primary_contact_is_looked_up_by_role() -> None:
    book = sequence_playbook("primary_contact", "seq-7", "usage_drop")
    run = first_run(book, assessment(drop()))
    [enroll, _] = plan_step(book, run, assessment(drop()), account(), inputs()).actions
    assert isinstance(enroll, EnrollInSequence)
    assert (enroll.contact_email, enroll.contact_role) == (None, "primary_contact")


CHANNELS = {
    "channels": {
        "slack": {"token_env": "SLACK_BOT_TOKEN"},
        "email": {"host": "smtp.acme.example", "from_address": "cs@acme.example"},
    }
}


def alert_playbook() -> Playbook:
    return playbook(
        CHANNELS,
        steps=[
            {
                "name": "alert",
                "actions": [
                    {"task": {"subject": "Call {{ account.name }}", "body": "{{ reason.text }}"}},
                    {"slack": {"assignee": "csm", "text": "{{ reason.text }}"}},
                    {"slack": {"channel": "#cs-alerts", "text": "{{ account.name }} flagged."}},
                    {"email": {"assignee": "ae", "subject": "Risk", "body": "{{ reason.text }}"}},
                    {"email": {"to": "vp@acme.example", "subject": "Risk", "body": "Flagged."}},
                ],
            }
        ],
    )


def test_slack_and_email_are_left_out_where_the_channel_is_not_set_up_and_the_task_stands() -> None:
    book = alert_playbook()
    run = first_run(book, assessment(drop()))
    plan = plan_step(book, run, assessment(drop()), account(), inputs(channels=frozenset()))
    assert [type(action) for action in plan.actions] == [CreateTask]
    slack_only = inputs(channels=frozenset({"slack"}))
    plan = plan_step(book, run, assessment(drop()), account(), slack_only)
    assert [type(action) for action in plan.actions] == [CreateTask, SendSlack, SendSlack]


def test_slack_goes_to_the_assignee_or_a_channel_and_email_to_the_assignee_or_an_address() -> None:
    book = alert_playbook()
    run = first_run(book, assessment(drop()))
    routes = {"owner": "ana", "csm": "carl", "ae": "abe"}
    both = inputs(routes=routes, channels=frozenset({"slack", "email"}))
    _, dm, channel, mail, fixed = plan_step(book, run, assessment(drop()), account(), both).actions
    assert isinstance(dm, SendSlack)
    assert isinstance(channel, SendSlack)
    assert (dm.owner_id, dm.channel) == ("carl", None)
    assert dm.text == drop().text
    assert (channel.owner_id, channel.channel) == (None, "#cs-alerts")
    assert isinstance(mail, SendEmail)
    assert isinstance(fixed, SendEmail)
    assert (mail.owner_id, mail.to) == ("abe", None)
    assert (fixed.owner_id, fixed.to) == (None, "vp@acme.example")


def test_a_field_update_writes_a_rendered_value() -> None:
    book = playbook(
        {"account_facts": {"extra": {"health": "Health__c"}}},
        steps=[
            {
                "name": "mark",
                "actions": [
                    {"field_update": {"field": "health", "value": "red\n{{ risk.level }}"}}
                ],
            }
        ],
    )
    run = first_run(book, assessment(drop()))
    [update] = plan_step(book, run, assessment(drop()), account(), inputs()).actions
    assert isinstance(update, UpdateField)
    assert (update.crm_field, update.value) == ("health", "red high")


# -- plan_step: idempotency -----------------------------------------------------------------------


def two_step_playbook() -> Playbook:
    first = task_step("check_in")
    first["actions"].append({"note": {"body": "Flagged: {{ reason.text }}"}})
    return playbook(
        steps=[first, task_step("escalate", 2, only_if=["trigger_holds", "previous_task_open"])]
    )


def test_planning_the_same_step_twice_gives_the_same_keys_so_a_rerun_creates_nothing_new() -> None:
    book = two_step_playbook()
    run = first_run(book, assessment(drop()))
    once = plan_step(book, run, assessment(drop()), account(), inputs())
    again = plan_step(book, run, assessment(drop(), nps()), account(), inputs())
    keys = [action.idempotency_key for action in once.actions]
    assert keys == [action.idempotency_key for action in again.actions]
    assert len(set(keys)) == len(keys) == 2


def test_each_step_and_each_run_has_its_own_keys() -> None:
    book = two_step_playbook()
    run = first_run(book, assessment(drop()))
    first = plan_step(book, run, assessment(drop()), account(), inputs())
    second = plan_step(book, at_step(run, 1), assessment(drop()), account(), inputs())
    later_run = first_run(book, assessment(drop()), today=MONDAY + timedelta(days=60))
    again = plan_step(book, later_run, assessment(drop()), account(), inputs())
    first_keys = {action.idempotency_key for action in first.actions}
    assert first_keys.isdisjoint(action.idempotency_key for action in second.actions)
    assert first_keys.isdisjoint(action.idempotency_key for action in again.actions)
    assert {action.step for action in second.actions} == {"escalate"}


# -- what the rep reads ---------------------------------------------------------------------------


def test_the_task_carries_the_context_a_rep_needs() -> None:
    body = (
        "Why: {{ reason.text }}\n"
        "{% if trend.sparkline %}{{ trend.label }}, last 8 weeks (from {{ trend.first }} to "
        "{{ trend.last }}): {{ trend.sparkline }}\n{% endif %}"
        "{% for other in other_reasons %}- {{ other.text }}\n{% endfor %}"
        "{% for person in people %}- {{ person.name }} ({{ person.title }})\n{% endfor %}"
        "Step {{ step.number }} of {{ playbook.title }} on {{ today }}, risk {{ risk.level }}: "
        "{{ record_url }}"
    )
    book = playbook(steps=[task_step("check_in", body=body)])
    trend = Trend("Daily active users (weekly average)", (10.0, 10.0, 9.5, 4.0))
    after = assessment(drop(), nps(), decision_maker(), trends={"usage_drop": trend})
    run = first_run(book, after)
    step_inputs = inputs(record_url="https://crm.example/acme")
    [task] = tasks(plan_step(book, run, after, account(), step_inputs).actions)
    lines = task.body.splitlines()
    assert lines[0] == f"Why: {drop().text}"
    assert lines[1].endswith(f"(from 10.0 to 4.0): {trend.sparkline}")
    assert f"- {nps().text}" in lines
    assert "- Kim Park (VP Operations)" in lines
    assert decision_maker().text not in task.body  # a person is under people, not reasons
    assert lines[-1].endswith("risk high: https://crm.example/acme")
    assert "Step 1 of Check in on 2026-11-23" in lines[-1]
    assert task.contact_email is None
    assert task.risk_score == after.score


def test_people_involved_lists_decision_makers_first_and_marks_the_trigger() -> None:
    priya, kim = champion_left(), decision_maker()
    people = people_involved([drop(), priya, kim], priya)
    assert [person["name"] for person in people] == ["Kim Park", "Priya Natarajan"]
    assert [person["is_trigger"] for person in people] == [False, True]
    assert people[0]["title"] == "VP Operations"


def test_a_subject_is_one_line_and_a_body_loses_trailing_blanks() -> None:
    context = {"account": {"name": "Acme\nCorp"}, "reason": {"text": "Down."}}
    assert render_line(template("  {{ account.name }}:\n {{ reason.text }} "), context) == (
        "Acme Corp: Down."
    )
    assert render_text(template("a  \n\n\n\nb\n\n"), context) == "a\n\nb"


def test_the_sandbox_refuses_to_reach_python_internals() -> None:
    from jinja2.exceptions import SecurityError

    source = "{{ account.__class__.__init__.__globals__ }}"
    assert problems(source, frozenset(), frozenset()) != []
    with pytest.raises(SecurityError):
        render_text(template(source), {"account": account()})


def test_sentence_breaks_finds_a_line_cut_mid_sentence_only() -> None:
    fine = (
        "Why: usage fell 60%.\nAlso on this account:\n- 2 tickets open\n"
        "Daily active users, last 4 weeks: ▇▇▆▁\nhttps://crm.example/acme\nCall (today)"
    )
    assert sentence_breaks(fine) == []
    assert sentence_breaks("Call your main contact\nthis week.") == ["Call your main contact"]
