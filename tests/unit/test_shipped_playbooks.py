"""Every shipped playbook, as a rep meets it: it resolves under the default config, and each of its
tasks, planned for an account flagged by the real rules (the reasons, numbers and trends the
rules produce), reads as something to act on: why, the metric's sparkline, the other open
reasons, the people involved, a suggested next step, no sentence cut across lines."""

from __future__ import annotations

import re
from dataclasses import replace
from datetime import date, timedelta
from typing import Any

import pytest

from adapters.protocol import CrmAccount
from integration.config.schema import Config, RiskConfig
from integration.risk.assess import RULES, RiskAssessment, assess
from integration.risk.catalogue import REASONS
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.trends import Trend, reason_trend
from integration.signals.events import ChangeType
from playbooks.actions import CreateTask, NotifyOwner, SendSlack
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import Playbook, runs_to_start, shipped_definitions
from playbooks.planning import StepInputs, plan_step
from playbooks.runs import Calendar, Run
from playbooks.templates import sentence_breaks
from tests.unit import test_reason_catalogue as catalogue
from tests.unit import test_risk, test_rules_more

NOW = catalogue.NOW
TODAY = NOW.date()
ROUTES = {"owner": "owner-1", "csm": "csm-1", "ae": "ae-1", "manager": "manager-1"}
ACCOUNT = CrmAccount("crm-1", "Acme Corp", "owner-1", "acme", "acme.example")


def _generated() -> dict[str, tuple[Reason, Trend | None]]:
    """The first reason each code's rule raises on the reason catalogue's accounts, with the
    trend drawn from the same account's history (None where the code has no metric)."""
    found: dict[str, tuple[Reason, Trend | None]] = {}
    for name, build, rule in catalogue.CASES:
        state = build()
        for reason in RULES[name](state, rule, NOW):
            trend = reason_trend(reason, state.usage)
            found.setdefault(reason.code, (reason, trend if trend and trend.values else None))
    found["renewal_near"] = (catalogue._renewal(), None)
    return found


GENERATED = _generated()
PLAYBOOKS = {book.name: book for book in resolve_playbooks(Config())}
# Someone else on the account worth calling: a decision-maker newly promoted there.
SAM = replace(
    GENERATED["new_decision_maker"][0],
    key="new_decision_maker:sam@acme.example",
    text="Sam Lee was promoted to Chief Data Officer (reported by clay on 2026-11-19): "
    "a new decision-maker to meet.",
    details={
        "person": "Sam Lee",
        "email": "sam@acme.example",
        "new_title": "Chief Data Officer",
        "source": "clay",
    },
)


def flagged(code: str) -> RiskAssessment:
    """An account flagged for `code` by the real rule, with another open risk and a newly
    promoted decision-maker, and the trend behind the flag where it has one."""
    reason, trend = GENERATED[code]
    other = GENERATED["long_open_tickets" if code != "long_open_tickets" else "nps_detractor"][0]
    reasons = (reason, other, SAM)
    return RiskAssessment(
        "acme",
        RiskLevel.HIGH,
        95,
        reasons,
        None,
        None,
        None,
        {reason.key: trend} if trend else {},
    )


def planned_tasks(book: Playbook, code: str, step: int) -> tuple[RiskAssessment, list[CreateTask]]:
    after = flagged(code)
    run = Run("run-1", book.name, "acme", GENERATED[code][0].key, TODAY, next_step=step)
    inputs = StepInputs(TODAY, Calendar(), ROUTES, fallback_owner="fallback-1")
    plan = plan_step(book, run, after, ACCOUNT, inputs)
    assert plan.skipped is None
    return after, [action for action in plan.actions if isinstance(action, CreateTask)]


def task_cases() -> list[Any]:
    """(playbook, trigger code, step index) for every step with a task, every trigger code."""
    cases = []
    for name, book in PLAYBOOKS.items():
        for step, spec in enumerate(book.spec.steps):
            if not any(action.task for action in spec.actions):
                continue
            for code in book.spec.trigger.reasons:
                cases.append(pytest.param(name, code, step, id=f"{name}-{code}-{step}"))
    return cases


def test_every_shipped_playbook_resolves_enabled_under_the_default_config() -> None:
    assert sorted(PLAYBOOKS) == sorted(shipped_definitions())
    for book in PLAYBOOKS.values():
        assert book.spec.enabled
        assert any(action.task for step in book.spec.steps for action in step.actions), book.name


def test_every_code_a_shipped_playbook_triggers_on_is_a_reason_a_rule_raises() -> None:
    codes = {code for book in PLAYBOOKS.values() for code in book.spec.trigger.reasons}
    assert codes <= set(GENERATED)
    assert codes <= set(REASONS)


@pytest.mark.parametrize(("name", "code", "step"), task_cases())
def test_a_shipped_task_says_why_with_the_numbers_the_trend_and_a_next_step(
    name: str, code: str, step: int
) -> None:
    after, created = planned_tasks(PLAYBOOKS[name], code, step)
    assert created
    reason = after.reasons[0]
    trend = after.trends.get(reason.key)
    for task in created:
        lines = task.body.splitlines()
        assert f"Why: {reason.text}" in lines
        if trend is not None:
            drawn = [line for line in lines if line.startswith(trend.label)]
            assert drawn, task.body
            assert drawn[0].endswith(f": {trend.sparkline}"), task.body
        assert any(line.startswith("Suggested next step: ") for line in lines)
        assert sentence_breaks(task.body) == [], task.body
        assert "None" not in task.body
        assert "{{" not in task.body


@pytest.mark.parametrize(("name", "code", "step"), task_cases())
def test_a_shipped_subject_is_one_filled_line_naming_the_account(
    name: str, code: str, step: int
) -> None:
    _, created = planned_tasks(PLAYBOOKS[name], code, step)
    for task in created:
        subject = task.subject
        assert subject
        assert "\n" not in subject
        assert ACCOUNT.name in subject
        assert "None" not in subject
        assert "  " not in subject
        # every slot filled: no empty value before a separator or at the end
        assert not subject.rstrip().endswith((":", ",", " of", " to", " for")), subject
        assert ": ," not in subject
        assert " , " not in subject
        assert ":  " not in subject


NO_OTHER_REASONS = "the shipped template renders no other_reasons, so the rep does not see the "


@pytest.mark.parametrize(("name", "code", "step"), task_cases())
def test_a_shipped_task_lists_the_other_open_reasons(name: str, code: str, step: int) -> None:
    after, created = planned_tasks(PLAYBOOKS[name], code, step)
    other = after.reasons[1]
    for task in created:
        assert f"- {other.text}" in task.body.splitlines(), task.body


NO_PEOPLE = (
    "the shipped task body renders neither `people` nor the person reasons (other_reasons "
    "leaves them out), so a decision-maker newly promoted in the account appears nowhere in "
)


@pytest.mark.parametrize(("name", "code", "step"), task_cases())
def test_a_shipped_task_names_the_people_involved(name: str, code: str, step: int) -> None:
    _, created = planned_tasks(PLAYBOOKS[name], code, step)
    for task in created:
        assert "Sam Lee" in task.body, task.body
        assert sentence_breaks(task.body) == []


@pytest.mark.parametrize("code", ["nps_detractor", "csat_low"])
def test_a_subject_keeps_the_acronyms_of_the_reason_title(code: str) -> None:
    _, [task] = planned_tasks(PLAYBOOKS["voice_of_customer_followup"], code, 0)
    acronyms = [word for word in REASONS[code].title.split() if len(word) > 1 and word.isupper()]
    assert acronyms
    for word in acronyms:
        assert word in re.findall(r"\w+", task.subject), task.subject


def test_a_usage_drop_judged_by_the_real_rules_becomes_a_call_for_the_owner() -> None:
    promoted = test_rules_more.person("VP Operations", ChangeType.PROMOTION, joined="acct-1")
    state = replace(test_risk.state([10] * 42 + [4] * 7), people=(promoted,))
    after = assess(state, RiskConfig(), NOW)
    drop = next(reason for reason in after.reasons if reason.code == "usage_drop")
    assert drop.key in after.trends
    books = [PLAYBOOKS["usage_drop_checkin"], PLAYBOOKS["new_decision_maker_intro"]]
    runs = runs_to_start(None, after, ACCOUNT, books, {}, TODAY)
    [usage_run] = [run for run in runs if run.playbook == "usage_drop_checkin"]
    assert usage_run.trigger_key == drop.key
    inputs = StepInputs(TODAY, Calendar(), {"owner": "owner-1"})
    plan = plan_step(PLAYBOOKS["usage_drop_checkin"], usage_run, after, ACCOUNT, inputs)
    [task] = plan.actions
    assert isinstance(task, CreateTask)
    assert task.owner_id == "owner-1"
    assert task.task_type == "call"
    assert f"{drop.details['drop_pct']:.0f}%" in task.subject
    assert drop.text in task.body
    assert after.trends[drop.key].sparkline in task.body
    assert "Kim Park" in task.body  # the newly promoted VP, under People involved
    assert sentence_breaks(task.body) == []
    # the escalation to the manager is due three working days later
    assert TODAY.weekday() == 0
    assert plan.next_due == TODAY + timedelta(days=3)  # Monday + 3 working days: Thursday


def test_a_usage_drop_on_an_account_nobody_uses_is_left_to_the_win_back() -> None:
    after = flagged("usage_drop")
    inactive = replace(after, reasons=(*after.reasons, GENERATED["inactivity"][0]))
    books = [PLAYBOOKS["usage_drop_checkin"], PLAYBOOKS["inactivity_winback"]]
    runs = runs_to_start(None, inactive, ACCOUNT, books, {}, TODAY)
    assert [run.playbook for run in runs] == ["inactivity_winback"]


def test_the_renewal_escalation_waits_for_open_risk_and_reaches_the_ae_and_the_manager() -> None:
    book = PLAYBOOKS["renewal_risk_escalation"]
    low = replace(flagged("renewal_near"), level=RiskLevel.LOW)
    assert runs_to_start(None, low, ACCOUNT, [book], {}, TODAY) == []
    [run] = runs_to_start(None, flagged("renewal_near"), ACCOUNT, [book], {}, TODAY)
    no_manager = StepInputs(TODAY, Calendar(), {"owner": "owner-1", "ae": "ae-1"}, "fallback-1")
    plan = plan_step(book, run, flagged("renewal_near"), ACCOUNT, no_manager)
    assert [action.owner_id for action in plan.actions] == ["ae-1", "fallback-1"]


def test_low_utilization_tells_the_ae_in_the_crm_and_the_owner_when_there_is_no_ae() -> None:
    book = PLAYBOOKS["low_license_utilization"]
    after = flagged("license_utilization")
    [run] = runs_to_start(None, after, ACCOUNT, [book], {}, TODAY)
    for routes, expected in [(ROUTES, "ae-1"), ({"owner": "owner-1"}, "owner-1")]:
        plan = plan_step(book, run, after, ACCOUNT, StepInputs(TODAY, Calendar(), routes))
        [notice] = [action for action in plan.actions if isinstance(action, NotifyOwner)]
        assert notice.owner_id == expected
        assert GENERATED["license_utilization"][0].text in notice.body


def test_a_past_champion_joining_alerts_the_csm_in_slack_once_slack_is_set_up() -> None:
    book = PLAYBOOKS["champion_joined_welcome"]
    after = flagged("champion_joined")
    [run] = runs_to_start(None, after, ACCOUNT, [book], {}, TODAY)
    without = plan_step(book, run, after, ACCOUNT, StepInputs(TODAY, Calendar(), ROUTES))
    assert [type(action) for action in without.actions] == [CreateTask]
    slack = StepInputs(TODAY, Calendar(), ROUTES, channels=frozenset({"slack"}))
    alert, task = plan_step(book, run, after, ACCOUNT, slack).actions
    assert isinstance(alert, SendSlack)
    assert isinstance(task, CreateTask)
    assert alert.owner_id == task.owner_id == "csm-1"
    assert GENERATED["champion_joined"][0].text in alert.text


def test_a_champion_leaving_asks_for_an_intro_at_the_new_company_and_logs_a_note() -> None:
    book = PLAYBOOKS["champion_left_multithread"]
    after = flagged("champion_left")
    left = after.reasons[0]
    [run] = runs_to_start(None, after, ACCOUNT, [book], {}, TODAY)
    plan = plan_step(book, run, after, ACCOUNT, StepInputs(TODAY, Calendar(), ROUTES))
    assert {type(action).__name__ for action in plan.actions} == {"CreateTask", "CreateNote"}
    [task] = [action for action in plan.actions if isinstance(action, CreateTask)]
    assert left.details["person"] in task.subject
    assert f"introduction at {left.details['new_company']}" in task.body
    assert task.priority == "high"
    assert task.due_date == Calendar().add_working_days(TODAY, 1)


def test_every_shipped_task_is_due_its_working_days_after_a_friday_trigger() -> None:
    friday = date(2026, 11, 27)
    for name, book in PLAYBOOKS.items():
        code = book.spec.trigger.reasons[0]
        run = Run("run-1", name, "acme", GENERATED[code][0].key, friday)
        plan = plan_step(book, run, flagged(code), ACCOUNT, StepInputs(friday, Calendar(), ROUTES))
        specs = [action.task for action in book.spec.steps[0].actions if action.task]
        created = [action for action in plan.actions if isinstance(action, CreateTask)]
        assert len(created) == len(specs), name
        for task, spec in zip(created, specs, strict=True):
            weekdays_between = sum(
                (friday + timedelta(days=n)).weekday() < 5
                for n in range(1, (task.due_date - friday).days + 1)
            )
            assert task.due_date.weekday() < 5, name
            assert weekdays_between == spec.due_in_days, name
