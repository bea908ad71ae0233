"""Playbooks as an admin writes them in config.yaml: tuning a shipped one, writing a new one, and
each mistake refused with its YAML path (and a hint where one helps), all of them at once, as
`integration validate` prints them."""

from __future__ import annotations

from dataclasses import replace
from datetime import date
from pathlib import Path
from typing import Any

import pytest
import yaml
from click.testing import CliRunner

from adapters.protocol import CrmAccount
from integration.cli.main import main
from integration.config.playbooks import merged_definition
from integration.config.schema import Config
from integration.errors import ConfigError, InvalidConfigError
from integration.jobs.context import read_config
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import Reason, RiskLevel
from playbooks.actions import CreateTask, EnrollInSequence, NotifyOwner, SendSlack
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import Playbook, runs_to_start, shipped_definitions
from playbooks.planning import StepInputs, plan_step
from playbooks.runs import Calendar

SECRET = "whsec_MfKQ9r8GKYqrTwjUPD8ILPZIo2LaLaSw"
SECRETS = {"USAGE_WEBHOOK_SECRET": SECRET, "JOB_CHANGES_WEBHOOK_SECRET": SECRET}
MONDAY = date(2026, 11, 23)
ACCOUNT = CrmAccount("crm-1", "Acme Corp", "owner-1", "acme", "acme.example", {})
DROP = Reason(
    "usage_drop",
    "usage_drop",
    "Daily active users fell 60% below their 4-week normal (4.0 vs 10.0 a day) over the last "
    "7 days.",
    RiskLevel.HIGH,
    {"metric": "active_users", "observed": 4.0, "baseline": 10.0, "drop_pct": 60.0},
)
NPS = Reason(
    "nps_detractor",
    "nps_detractor",
    "2 of 4 NPS responses in the last 30 days were detractors (a score of 6 or less).",
    RiskLevel.MEDIUM,
    {"metric": "nps_detractors", "observed": 2, "responses": 4, "window_days": 30},
)


def config(text: str) -> Config:
    return Config.model_validate(yaml.safe_load(text))


def resolved(text: str) -> dict[str, Playbook]:
    return {book.name: book for book in resolve_playbooks(config(text))}


def refusals(tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str) -> list[ConfigError]:
    """What `read_config` (behind `integration validate` and every process) refuses."""
    for name, value in SECRETS.items():
        monkeypatch.setenv(name, value)
    path = tmp_path / "config.yaml"
    path.write_text(text)
    with pytest.raises(InvalidConfigError) as caught:
        read_config(path)
    return caught.value.errors


def flagged(*reasons: Reason) -> RiskAssessment:
    return RiskAssessment("acme", RiskLevel.HIGH, 95, reasons, None, None, None)


def steps(book: Playbook) -> list[tuple[str, int, list[str]]]:
    return [(s.name, s.after_days, [a.kind for a in s.actions]) for s in book.spec.steps]


def tasks_of(book: Playbook) -> list[Any]:
    return [action.task for step in book.spec.steps for action in step.actions if action.task]


# -- an admin tunes the shipped playbooks ------------------------------------------------------


def test_shortcuts_set_priority_and_due_days_on_every_task_of_the_playbook() -> None:
    shipped = resolved("{}")["usage_drop_checkin"]
    tuned = resolved("playbooks: {usage_drop_checkin: {priority: low, due_in_days: 4}}")[
        "usage_drop_checkin"
    ]
    assert len(tasks_of(tuned)) == len(tasks_of(shipped)) >= 2
    assert {(t.priority, t.due_in_days) for t in tasks_of(tuned)} == {("low", 4)}
    assert {(t.priority, t.due_in_days) for t in tasks_of(shipped)} != {("low", 4)}
    others = resolved("playbooks: {usage_drop_checkin: {priority: low}}")
    assert tasks_of(others["champion_left_multithread"])[0].priority == "high"


def test_without_a_sequence_id_the_automated_touch_is_left_out_and_the_task_comes_at_once() -> None:
    book = resolved("{}")["usage_drop_checkin"]
    assert all(kind != "sequence" for _, _, kinds in steps(book) for kind in kinds)
    first_name, first_delay, _ = steps(book)[0]
    assert (first_name, first_delay) == ("rep_task", 0)


def test_a_sequence_id_fills_the_automated_touch_which_then_runs_first() -> None:
    book = resolved("playbooks: {usage_drop_checkin: {sequence_id: seq-42}}")["usage_drop_checkin"]
    shipped = shipped_definitions()["usage_drop_checkin"]
    assert [name for name, _, _ in steps(book)] == [step["name"] for step in shipped["steps"]]
    assert steps(book)[0][2] == ["sequence"]
    assert steps(book)[1][1] == shipped["steps"][1]["after_days"]
    [run] = runs_to_start(None, flagged(DROP), ACCOUNT, [book], {}, MONDAY)
    plan = plan_step(book, run, flagged(DROP), ACCOUNT, StepInputs(MONDAY, Calendar(), {}))
    [enroll] = plan.actions
    assert isinstance(enroll, EnrollInSequence)
    assert (enroll.sequence_id, enroll.contact_role) == ("seq-42", "primary_contact")
    assert plan.next_due == Calendar().add_working_days(MONDAY, shipped["steps"][1]["after_days"])


def test_tune_steps_changes_a_shipped_step_and_switches_one_off() -> None:
    book = resolved(
        """
playbooks:
  usage_drop_checkin:
    tune_steps:
      manager_escalation: {after_days: 6}
"""
    )["usage_drop_checkin"]
    assert {name: days for name, days, _ in steps(book)}["manager_escalation"] == 6
    book = resolved(
        "playbooks: {usage_drop_checkin: {tune_steps: {manager_escalation: {enabled: false}}}}"
    )["usage_drop_checkin"]
    assert [name for name, _, _ in steps(book)] == ["rep_task"]


def test_enabled_false_switches_a_shipped_playbook_off() -> None:
    books = resolved("playbooks: {inactivity_winback: {enabled: false}}")
    assert "inactivity_winback" not in books
    assert set(books) == set(shipped_definitions()) - {"inactivity_winback"}


def test_notify_owner_adds_a_crm_alert_to_the_first_step() -> None:
    book = resolved("playbooks: {onboarding_stalled: {notify_owner: true}}")["onboarding_stalled"]
    assert steps(book)[0][2][-1] == "notify_owner"
    reason = Reason(
        "onboarding_stalled",
        "onboarding_stalled",
        "Onboarding stalled: 95 days in, the account has not reached integrations connected.",
        RiskLevel.MEDIUM,
        {"metric": "milestones", "missing": ["integrations_connected"], "age_days": 95},
    )
    [run] = runs_to_start(None, flagged(reason), ACCOUNT, [book], {}, MONDAY)
    inputs = StepInputs(MONDAY, Calendar(), {"owner": "owner-1"})
    plan = plan_step(book, run, flagged(reason), ACCOUNT, inputs)
    [notice] = [action for action in plan.actions if isinstance(action, NotifyOwner)]
    assert notice.owner_id == "owner-1"
    assert "Acme Corp" in notice.title
    assert notice.body == reason.text


def test_a_slack_channel_shortcut_posts_there_instead_of_a_dm() -> None:
    book = resolved("playbooks: {champion_joined_welcome: {slack_channel: '#cs-wins'}}")[
        "champion_joined_welcome"
    ]
    slack = [a.slack for step in book.spec.steps for a in step.actions if a.slack]
    assert slack
    assert {s.channel for s in slack} == {"#cs-wins"}


def test_merging_replaces_whole_keys_and_leaves_the_shipped_definition_alone() -> None:
    shipped = shipped_definitions()["usage_drop_checkin"]
    before = yaml.safe_dump(shipped)
    merged = merged_definition(shipped, {"cooldown_days": 3, "conditions": {"plans": ["pro"]}})
    assert merged["cooldown_days"] == 3
    assert merged["conditions"] == {"plans": ["pro"]}
    assert yaml.safe_dump(shipped) == before


# -- an admin writes a new playbook --------------------------------------------------------------

NEW_PLAYBOOK = """
account_facts:
  segment: Segment__c
  extra: {industry: Industry}
channels:
  slack: {token_env: SLACK_BOT_TOKEN}
playbooks:
  detractor_call:
    title: Call the detractor's team
    trigger: {reasons: [nps_detractor]}
    conditions:
      segments: [enterprise]
      fields: [{field: industry, one_of: [retail, banking]}]
    cooldown_days: 20
    steps:
      - name: call
        actions:
          - task:
              assignee: csm
              type: call
              priority: high
              due_in_days: 1
              subject: >-
                Call {{ account.name }} ({{ account.facts.industry }}):
                {{ reason.details.observed }} detractors
              body: |
                Why: {{ reason.text }}
                Suggested next step: call them today.
          - slack: {channel: "#cs-escalations", text: "{{ account.name }}: {{ reason.text }}"}
      - name: follow_up
        after_days: 3
        only_if: [trigger_holds, previous_task_open]
        actions:
          - task:
              assignee: manager
              subject: "Follow up {{ account.name }}"
              body: "{{ reason.text }}"
"""


def test_a_new_playbook_in_config_yaml_runs_like_a_shipped_one() -> None:
    book = resolved(NEW_PLAYBOOK)["detractor_call"]
    assert book.spec.title == "Call the detractor's team"
    enterprise = CrmAccount(
        "crm-1", "Acme Corp", "owner-1", "acme", None, {"segment": "enterprise"}
    )
    retail = replace(enterprise, facts={"segment": "enterprise", "industry": "Retail"})
    assert runs_to_start(None, flagged(NPS), enterprise, [book], {}, MONDAY) == []
    assert runs_to_start(None, flagged(DROP), retail, [book], {}, MONDAY) == []
    [run] = runs_to_start(None, flagged(NPS), retail, [book], {}, MONDAY)
    inputs = StepInputs(
        MONDAY, Calendar(), {"owner": "owner-1", "csm": "csm-1"}, channels=frozenset({"slack"})
    )
    plan = plan_step(book, run, flagged(NPS), retail, inputs)
    task, alert = plan.actions
    assert isinstance(task, CreateTask)
    assert isinstance(alert, SendSlack)
    assert task.subject == "Call Acme Corp (Retail): 2 detractors"
    assert task.owner_id == "csm-1"
    assert task.task_type == "call"
    assert alert.channel == "#cs-escalations"
    assert plan.next_due == Calendar().add_working_days(MONDAY, 3)


# -- every mistake refused with its YAML path ----------------------------------------------------

OWN = """
playbooks:
  own:
    title: Own
    trigger: {{reasons: [{trigger}]}}
    steps:
      - name: first
        actions:
          - task: {{subject: "{subject}", body: "{body}"}}
"""


def own(
    trigger: str = "usage_drop", subject: str = "Call {{ account.name }}", body: str = "Why."
) -> str:
    """An admin's one-step playbook (the values go in as they are, templates and all)."""
    return OWN.format(trigger=trigger, subject=subject, body=body)


REFUSED: list[Any] = [
    pytest.param(
        own(trigger="nps_detractr"),
        "playbooks.own.trigger.reasons[0]",
        "unknown reason code 'nps_detractr'",
        "did you mean 'nps_detractor'?",
        id="misspelt-reason-code",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {conditions: {reasons_absent: [inactivty]}}}",
        "playbooks.usage_drop_checkin.conditions.reasons_absent[0]",
        "unknown reason code 'inactivty'",
        "did you mean 'inactivity'?",
        id="misspelt-reason-in-conditions",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {when: {reasons: [usage_drop]}}}",
        "playbooks.usage_drop_checkin.when",
        "unknown key 'when'",
        "trigger",
        id="misspelt-key-when",
    ),
    pytest.param(
        own(body="{% if reason.text %}open"),
        "playbooks.own.steps[0].actions[0].task.body",
        "template does not compile",
        "",
        id="template-does-not-compile",
    ),
    pytest.param(
        own(body="{{ acount.name }}"),
        "playbooks.own.steps[0].actions[0].task.body",
        "unknown template variable 'acount'",
        "",
        id="unknown-variable",
    ),
    pytest.param(
        own(subject="{{ account.owner }}"),
        "playbooks.own.steps[0].actions[0].task.subject",
        "account has no 'owner'",
        "",
        id="unknown-attribute",
    ),
    pytest.param(
        own(trigger="nps_detractor", body="Down {{ reason.details.drop_pct }}%."),
        "playbooks.own.steps[0].actions[0].task.body",
        "reason.details has no 'drop_pct' for this trigger",
        "",
        id="detail-the-trigger-never-carries",
    ),
    pytest.param(
        own(body="{{ account.facts.industry }}"),
        "playbooks.own.steps[0].actions[0].task.body",
        "account.facts has no 'industry'",
        "",
        id="unmapped-fact",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {tune_steps: {manager_escalation: {after_days: 0}}}}",
        "playbooks.usage_drop_checkin.tune_steps.manager_escalation.after_days",
        "escalates on the same day",
        "",
        id="escalation-on-the-same-day",
    ),
    pytest.param(
        """
playbooks:
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: first
        only_if: [previous_task_open]
        actions: [{task: {subject: s, body: b}}]
""",
        "playbooks.own.steps[0].only_if",
        "the first step has no previous step",
        "remove previous_task_open",
        id="previous-task-open-on-the-first-step",
    ),
    pytest.param(
        """
playbooks:
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: log
        actions: [{note: {body: Flagged.}}]
      - name: escalate
        after_days: 2
        only_if: [previous_task_open]
        actions: [{task: {subject: s, body: b}}]
""",
        "playbooks.own.steps[1].only_if",
        "step 'log' creates no task",
        "",
        id="previous-task-open-after-a-step-with-no-task",
    ),
    pytest.param(
        """
playbooks:
  usage_drop_checkin:
    steps:
      - name: touch
        actions: [{sequence: {sequence_id: seq-1, contact: signal_person}}]
""",
        "playbooks.usage_drop_checkin.steps[0].actions[0].sequence.contact",
        "the trigger's reasons name no person",
        "primary_contact",
        id="signal-person-sequence-on-usage-drop",
    ),
    pytest.param(
        """
playbooks:
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: mark
        actions: [{field_update: {field: helth, value: red}}]
""",
        "playbooks.own.steps[0].actions[0].field_update.field",
        "unknown or unmapped field 'helth'",
        "",
        id="field-update-unknown-field",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {conditions: {fields: [{field: industry, equals: x}]}}}",
        "playbooks.usage_drop_checkin.conditions.fields[0].field",
        "unknown or unmapped field 'industry'",
        "account_facts",
        id="condition-on-an-unmapped-field",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {conditions: {segments: [enterprise]}}}",
        "playbooks.usage_drop_checkin.conditions.segments",
        "account_facts.segment, which is not mapped",
        "set account_facts.segment",
        id="segment-condition-unmapped",
    ),
    pytest.param(
        """
playbooks:
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: alert
        actions: [{slack: {text: "{{ reason.text }}"}}]
""",
        "playbooks.own.steps[0].actions[0].slack",
        "needs channels.slack configured",
        "add channels.slack",
        id="slack-without-channels",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {tune_steps: {rep_tsk: {after_days: 2}}}}",
        "playbooks.usage_drop_checkin.tune_steps.rep_tsk",
        "no step 'rep_tsk'",
        "rep_task",
        id="unknown-tuned-step",
    ),
    pytest.param(
        "playbooks: {usage_drop_chekin: {priority: low}}",
        "playbooks.usage_drop_chekin",
        "unknown playbook 'usage_drop_chekin'",
        "did you mean 'usage_drop_checkin'?",
        id="unknown-playbook-name",
    ),
    pytest.param(
        """
playbooks:
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: first
        actions: [{task: {subject: s, body: b, asignee: csm}}]
""",
        "playbooks.own.steps[0].actions[0].task.asignee",
        "unknown key 'asignee'",
        "did you mean 'assignee'?",
        id="misspelt-key-in-an-own-action",
    ),
]


@pytest.mark.parametrize(("text", "path", "message", "hint"), REFUSED)
def test_each_mistake_is_refused_with_its_yaml_path(
    tmp_path: Path,
    monkeypatch: pytest.MonkeyPatch,
    text: str,
    path: str,
    message: str,
    hint: str,
) -> None:
    errors = refusals(tmp_path, monkeypatch, text)
    assert [error.yaml_path for error in errors] == [path], [str(e) for e in errors]
    assert message in errors[0].message
    assert hint in errors[0].hint


def test_a_shipped_slack_step_is_fine_without_slack_but_an_admins_own_is_not() -> None:
    assert "champion_joined_welcome" in resolved("{}")
    text = """
playbooks:
  champion_joined_welcome:
    steps:
      - name: welcome
        actions: [{slack: {text: "{{ reason.text }}"}}, {email: {subject: Hi, body: Hi.}}]
"""
    with pytest.raises(InvalidConfigError) as caught:
        resolve_playbooks(config(text))
    assert [error.yaml_path for error in caught.value.errors] == [
        "playbooks.champion_joined_welcome.steps[0].actions[0].slack",
        "playbooks.champion_joined_welcome.steps[0].actions[1].email",
    ]


def test_a_signal_person_sequence_is_fine_on_a_reason_that_names_someone() -> None:
    books = resolved("playbooks: {champion_left_multithread: {sequence_id: seq-9}}")
    [sequence] = [
        action.sequence
        for step in books["champion_left_multithread"].spec.steps
        for action in step.actions
        if action.sequence
    ]
    assert (sequence.contact, sequence.sequence_id) == ("signal_person", "seq-9")


# -- `integration validate` prints them all at once ----------------------------------------------

MISTAKES = """
playbooks:
  usage_drop_chekin: {priority: low}
  usage_drop_checkin:
    tune_steps: {rep_tsk: {after_days: 2}}
  nps_call:
    title: NPS call
    trigger: {reasons: [nps_detractr]}
    steps:
      - name: call
        only_if: [previous_task_open]
        actions:
          - task: {subject: "Call {{ acount.name }}", body: "Down {{ reason.details.drop_pct }}%."}
          - slack: {text: "{{ reason.text }}"}
"""


def run_validate(tmp_path: Path, text: str) -> tuple[int, list[str]]:
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = CliRunner().invoke(main, ["validate", str(path)], env=SECRETS)
    return result.exit_code, result.output.replace(str(path), "config.yaml").splitlines()


def test_validate_prints_every_playbook_mistake_with_its_path_and_exits_1(tmp_path: Path) -> None:
    code, lines = run_validate(tmp_path, MISTAKES)
    assert code == 1
    errors = [line.strip() for line in lines[1:] if not line.strip().startswith("hint:")]
    assert lines[0] == f"config.yaml: {len(errors)} error(s)"
    expected = [
        "playbooks.usage_drop_chekin: unknown playbook 'usage_drop_chekin'",
        "playbooks.usage_drop_checkin.tune_steps.rep_tsk: no step 'rep_tsk' in this playbook",
        "playbooks.nps_call.trigger.reasons[0]: unknown reason code 'nps_detractr'",
        "playbooks.nps_call.steps[0].only_if: the first step has no previous step",
        "playbooks.nps_call.steps[0].actions[0].task.subject: unknown template variable 'acount'",
        "playbooks.nps_call.steps[0].actions[0].task.body: reason.details has no 'drop_pct'",
        "playbooks.nps_call.steps[0].actions[1].slack: a slack action needs channels.slack",
    ]
    for start in expected:
        assert any(error.startswith(start) for error in errors), (start, errors)
    assert len(errors) == len(expected)
    hints = [line.strip() for line in lines if line.strip().startswith("hint:")]
    assert any("did you mean 'usage_drop_checkin'?" in hint for hint in hints)
    assert any("did you mean 'nps_detractor'?" in hint for hint in hints)


def test_validate_accepts_tuned_and_new_playbooks(tmp_path: Path) -> None:
    text = NEW_PLAYBOOK + "  usage_drop_checkin: {sequence_id: seq-42, priority: low}\n"
    path = tmp_path / "config.yaml"
    path.write_text(text)
    result = CliRunner().invoke(
        main, ["validate", str(path)], env={**SECRETS, "SLACK_BOT_TOKEN": "xoxb-test"}
    )
    assert result.exit_code == 0, result.output
    assert result.output.splitlines()[0].endswith(": valid")


def test_validate_prints_playbook_mistakes_beside_other_config_mistakes(tmp_path: Path) -> None:
    text = "risk: {usage_drop: {drop_pc: 40}}\n" + MISTAKES
    code, lines = run_validate(tmp_path, text)
    assert code == 1
    assert any(line.strip().startswith("risk.usage_drop.drop_pc:") for line in lines)
    assert any(line.strip().startswith("playbooks.nps_call.trigger.reasons[0]:") for line in lines)


# -- assignees, shortcuts that would do nothing, sequences without an id ------------------------

OWN_ACTION = """
playbooks:
  own:
    title: Own
    trigger: {{reasons: [usage_drop]}}
    steps:
      - name: first
        actions: [{{{action}}}]
"""


def own_action(action: str) -> str:
    """An admin's one-step playbook with this one action (flow YAML)."""
    return OWN_ACTION.format(action=action)


ASSIGNEE_MESSAGE = "assignee must be owner, csm, ae, manager or user:<CRM user id>"

REFUSED_MORE: list[Any] = [
    pytest.param(
        own_action("task: {subject: s, body: b, assignee: boss}"),
        "playbooks.own.steps[0].actions[0].task.assignee",
        f"{ASSIGNEE_MESSAGE}, got 'boss'",
        id="task-assignee-unknown-role",
    ),
    pytest.param(
        own_action("notify_owner: {title: t, body: b, assignee: 'user:'}"),
        "playbooks.own.steps[0].actions[0].notify_owner.assignee",
        f"{ASSIGNEE_MESSAGE}, got 'user:'",
        id="notify-assignee-user-without-id",
    ),
    pytest.param(
        own_action("email: {subject: s, body: b, assignee: 'user:ana smith'}"),
        "playbooks.own.steps[0].actions[0].email.assignee",
        f"{ASSIGNEE_MESSAGE}, got 'user:ana smith'",
        id="email-assignee-user-id-with-a-space",
    ),
    pytest.param(
        """
playbooks:
  usage_drop_checkin:
    steps:
      - name: call
        actions: [{task: {subject: s, body: b, assignee: CSM}}]
""",
        "playbooks.usage_drop_checkin.steps[0].actions[0].task.assignee",
        f"{ASSIGNEE_MESSAGE}, got 'CSM'",
        id="shipped-playbook-steps-assignee-in-capitals",
    ),
    pytest.param(
        "playbooks: {voice_of_customer_followup: {sequence_id: seq-1}}",
        "playbooks.voice_of_customer_followup.sequence_id",
        "this playbook has no sequence action, so sequence_id would do nothing",
        id="sequence-id-on-a-playbook-without-a-sequence",
    ),
    pytest.param(
        "playbooks: {usage_drop_checkin: {slack_channel: '#cs-alerts'}}",
        "playbooks.usage_drop_checkin.slack_channel",
        "this playbook has no slack action, so slack_channel would do nothing",
        id="slack-channel-on-a-playbook-without-slack",
    ),
    pytest.param(
        own_action("sequence: {contact: primary_contact}"),
        "playbooks.own.steps[0].actions[0].sequence.sequence_id",
        "a sequence action in your own playbook needs a sequence_id",
        id="own-sequence-without-an-id",
    ),
    pytest.param(
        """
playbooks:
  inactivity_winback:
    steps:
      - name: winback
        actions: [{sequence: {contact: primary_contact}}]
""",
        "playbooks.inactivity_winback.steps[0].actions[0].sequence.sequence_id",
        "a sequence action in your own playbook needs a sequence_id",
        id="own-steps-on-a-shipped-playbook-sequence-without-an-id",
    ),
]


@pytest.mark.parametrize(("text", "path", "message"), REFUSED_MORE)
def test_each_assignee_shortcut_and_sequence_mistake_is_refused_with_its_yaml_path(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, text: str, path: str, message: str
) -> None:
    errors = refusals(tmp_path, monkeypatch, text)
    assert [(error.yaml_path, error.message) for error in errors] == [(path, message)]


def test_a_bad_assignee_reads_as_the_choices_not_as_a_regex(tmp_path: Path) -> None:
    code, lines = run_validate(tmp_path, own_action("task: {subject: s, body: b, assignee: boss}"))
    assert code == 1
    assert lines[0] == "config.yaml: 1 error(s)"
    [line] = [line.strip() for line in lines[1:] if line.strip()]
    assert line == (
        "playbooks.own.steps[0].actions[0].task.assignee: "
        "assignee must be owner, csm, ae, manager or user:<CRM user id>, got 'boss'"
    )
    for regex_part in ("^", "$", "[A-Za-z", "{1,80}", "pattern", "match"):
        assert regex_part not in line


@pytest.mark.parametrize(
    "assignee", ["owner", "csm", "ae", "manager", "user:005xx000001Sv6A", "user:ana@vendor.example"]
)
def test_every_assignee_the_message_lists_is_accepted(assignee: str) -> None:
    text = own_action(f"task: {{subject: s, body: b, assignee: '{assignee}'}}")
    [task] = tasks_of(resolved(text)["own"])
    assert task.assignee == assignee


def test_validate_prints_every_shortcut_and_sequence_mistake_at_once(tmp_path: Path) -> None:
    text = """
playbooks:
  voice_of_customer_followup: {sequence_id: seq-1}
  usage_drop_checkin: {slack_channel: '#cs-alerts'}
  own:
    title: Own
    trigger: {reasons: [usage_drop]}
    steps:
      - name: first
        actions:
          - sequence: {contact: primary_contact}
          - task: {subject: s, body: b, assignee: csm}
"""
    code, lines = run_validate(tmp_path, text)
    assert code == 1
    errors = [line.strip() for line in lines[1:] if line.strip()]
    errors = [line for line in errors if not line.startswith("hint:")]
    assert lines[0] == "config.yaml: 3 error(s)"
    assert sorted(line.split(":", 1)[0] for line in errors) == [
        "playbooks.own.steps[0].actions[0].sequence.sequence_id",
        "playbooks.usage_drop_checkin.slack_channel",
        "playbooks.voice_of_customer_followup.sequence_id",
    ]


def test_a_sequence_id_or_slack_channel_on_a_playbook_that_has_the_action_is_accepted() -> None:
    books = resolved(
        """
channels:
  slack: {token_env: SLACK_BOT_TOKEN}
playbooks:
  usage_drop_checkin: {sequence_id: seq-1}
  champion_joined_welcome: {slack_channel: '#cs-wins'}
"""
    )
    [sequence] = [
        a.sequence for s in books["usage_drop_checkin"].spec.steps for a in s.actions if a.sequence
    ]
    assert sequence.sequence_id == "seq-1"
    [slack] = [
        a.slack for s in books["champion_joined_welcome"].spec.steps for a in s.actions if a.slack
    ]
    assert slack.channel == "#cs-wins"


def test_a_shipped_sequence_without_an_id_is_not_refused_it_is_left_out() -> None:
    book = resolved("{}")["inactivity_winback"]
    assert all(action.kind != "sequence" for step in book.spec.steps for action in step.actions)


# -- tuning applies after the idle automated touch is left out ---------------------------------


def test_tuning_the_rep_task_without_a_sequence_id_keeps_the_delay_the_admin_set() -> None:
    book = resolved("playbooks: {usage_drop_checkin: {tune_steps: {rep_task: {after_days: 3}}}}")[
        "usage_drop_checkin"
    ]
    # The idle touch is left out first (the rep task takes its place, at once), then the
    # tuning: the rep task comes three working days after the trigger, not at once.
    assert steps(book) == [
        ("rep_task", 3, ["task"]),
        ("manager_escalation", 3, ["task"]),
    ]
    assert book.spec.steps[0].only_if == ("trigger_holds",)


def test_tuning_the_rep_task_with_a_sequence_id_counts_from_the_automated_touch() -> None:
    text = (
        "playbooks: {usage_drop_checkin: "
        "{sequence_id: seq-1, tune_steps: {rep_task: {after_days: 3}}}}"
    )
    book = resolved(text)["usage_drop_checkin"]
    assert steps(book) == [
        ("automated_touch", 0, ["sequence"]),
        ("rep_task", 3, ["task"]),
        ("manager_escalation", 3, ["task"]),
    ]


def test_tuning_only_the_escalation_leaves_the_rep_task_at_once() -> None:
    book = resolved(
        "playbooks: {usage_drop_checkin: {tune_steps: {manager_escalation: {after_days: 4}}}}"
    )["usage_drop_checkin"]
    assert steps(book) == [("rep_task", 0, ["task"]), ("manager_escalation", 4, ["task"])]


def test_a_tuned_delay_on_the_first_step_is_when_the_run_first_acts() -> None:
    book = resolved("playbooks: {usage_drop_checkin: {tune_steps: {rep_task: {after_days: 3}}}}")[
        "usage_drop_checkin"
    ]
    [run] = runs_to_start(None, flagged(DROP), ACCOUNT, [book], {}, MONDAY)
    first = book.spec.steps[run.next_step]
    assert (first.name, Calendar().add_working_days(MONDAY, first.after_days)) == (
        "rep_task",
        date(2026, 11, 26),  # Thursday: three working days after Monday
    )


def test_notify_owner_without_a_sequence_id_still_brings_the_rep_task_at_once() -> None:
    book = resolved("playbooks: {usage_drop_checkin: {notify_owner: true}}")["usage_drop_checkin"]
    # However the alert is placed, the rep's task comes on the day of the trigger.
    waited = 0
    first_task = ""
    for name, after_days, kinds in steps(book):
        waited += after_days
        if "task" in kinds:
            first_task = name
            break
    assert (first_task, waited) == ("rep_task", 0)
    assert any("notify_owner" in kinds for _, _, kinds in steps(book))
