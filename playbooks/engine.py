"""The playbook engine: which runs a change in an account's risk starts or ends, and what each
step of a run does.

Pure: it reads compiled playbooks and the values passed in (assessments, the account, the runs
so far, the people a step may route to) and returns runs and actions. The actions' idempotency
keys (run, step, action) make running the same plan twice harmless.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import date, timedelta
from importlib import resources
from typing import Any

import yaml
from jinja2 import Template

from adapters.protocol import CrmAccount
from integration.config.playbooks import (
    ActionSpec,
    Conditions,
    EmailAction,
    FieldCondition,
    FieldUpdateAction,
    NotifyAction,
    PlaybookSpec,
    SequenceAction,
    SlackAction,
    Step,
    TaskAction,
    Trigger,
)
from integration.risk.assess import RiskAssessment
from integration.risk.catalogue import REASONS
from integration.risk.reasons import Reason, RiskLevel
from integration.risk.trends import Trend
from playbooks.actions import (
    Action,
    CreateNote,
    CreateTask,
    EnrollInSequence,
    NotifyOwner,
    SendEmail,
    SendSlack,
    UpdateField,
)
from playbooks.runs import Calendar, Run
from playbooks.templates import compile_template, render_line, render_text

RANK = {RiskLevel.NONE: 0, RiskLevel.LOW: 1, RiskLevel.MEDIUM: 2, RiskLevel.HIGH: 3}
LEVEL_KEY = "level:"
# The text fields of each action kind that are templates.
TEMPLATE_FIELDS: dict[str, tuple[str, ...]] = {
    "task": ("subject", "body"),
    "note": ("body",),
    "field_update": ("value",),
    "sequence": (),
    "notify_owner": ("title", "body"),
    "slack": ("text",),
    "email": ("subject", "body"),
}
# Reasons whose person is worth calling: the task names them under "People involved".
PEOPLE_REASONS = ("new_decision_maker", "champion_joined", "champion_left")


def shipped_definitions() -> dict[str, dict[str, Any]]:
    """Every playbook file in playbooks/definitions/, raw, by name."""
    folder = resources.files("playbooks").joinpath("definitions")
    shipped = {}
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".yaml"):
            raw = yaml.safe_load(item.read_text(encoding="utf-8"))
            shipped[str(raw["name"])] = raw
    return shipped


@dataclass(frozen=True, slots=True)
class Playbook:
    """A validated playbook with its templates compiled, keyed (step, action, field)."""

    spec: PlaybookSpec
    templates: Mapping[tuple[int, int, str], Template] = field(repr=False)

    @property
    def name(self) -> str:
        return self.spec.name


def compile_playbook(spec: PlaybookSpec) -> Playbook:
    templates = {}
    for s, step in enumerate(spec.steps):
        for a, action in enumerate(step.actions):
            for name in TEMPLATE_FIELDS[action.kind]:
                templates[(s, a, name)] = compile_template(getattr(action.body, name))
    return Playbook(spec, templates)


# -- starting and ending runs -------------------------------------------------------------------


def runs_to_start(
    before: RiskAssessment | None,
    after: RiskAssessment,
    account: CrmAccount,
    playbooks: Sequence[Playbook],
    runs: Mapping[str, Run],
    today: date,
) -> list[Run]:
    """A run for each playbook whose trigger `after` newly meets and whose conditions hold,
    unless the same trigger's run is still going or the playbook is cooling down."""
    started: list[Run] = []
    for playbook in playbooks:
        spec = playbook.spec
        for key in newly_triggered(spec.trigger, before, after):
            current = runs.get(f"{spec.name}|{key}")
            if current is not None and (current.active or current.started_on == today):
                continue  # going, or started today already (a flag that flapped, a retry)
            if _cooling_down(spec, [*runs.values(), *started], today):
                continue
            if not conditions_hold(spec.conditions, after, account, today):
                continue
            run_id = f"{spec.name}:{after.account_id}:{key}:{today.isoformat()}"
            started.append(Run(run_id, spec.name, after.account_id, key, today, due_on=today))
    return started


def newly_triggered(
    trigger: Trigger, before: RiskAssessment | None, after: RiskAssessment
) -> list[str]:
    """Trigger keys `after` holds and `before` did not: reason keys, or `level:<level>`."""
    if trigger.risk_level:
        wanted = RANK[RiskLevel(trigger.risk_level)]
        was = RANK[before.level] if before else 0
        return [f"{LEVEL_KEY}{trigger.risk_level}"] if was < wanted <= RANK[after.level] else []
    had = before.reason_keys if before else frozenset()
    return [r.key for r in after.reasons if r.code in trigger.reasons and r.key not in had]


def trigger_holds(run: Run, assessment: RiskAssessment | None) -> bool:
    if assessment is None:
        return False
    if run.trigger_key.startswith(LEVEL_KEY):
        level = RiskLevel(run.trigger_key[len(LEVEL_KEY) :])
        return RANK[assessment.level] >= RANK[level]
    return run.trigger_key in assessment.reason_keys


def runs_to_clear(runs: Iterable[Run], after: RiskAssessment) -> list[Run]:
    """Runs going or done whose trigger no longer holds: the remaining steps of those going
    are cancelled, and the rep is told of their tasks still open."""
    return [run for run in runs if run.open_to_clear and not trigger_holds(run, after)]


def _cooling_down(spec: PlaybookSpec, runs: Iterable[Run], today: date) -> bool:
    if not spec.cooldown_days:
        return False
    return any(
        run.playbook == spec.name and (today - run.started_on).days < spec.cooldown_days
        for run in runs
    )


def conditions_hold(
    conditions: Conditions, assessment: RiskAssessment, account: CrmAccount, today: date
) -> bool:
    facts = account.facts
    codes = {reason.code for reason in assessment.reasons}
    checks = [
        not conditions.segments or facts.get("segment") in conditions.segments,
        not conditions.plans or facts.get("plan") in conditions.plans,
        conditions.renewal_within_days is None
        or _renews_within(facts.get("renewal_date"), today, conditions.renewal_within_days),
        all(code in codes for code in conditions.reasons_present),
        not any(code in codes for code in conditions.reasons_absent),
        conditions.risk_level_at_least is None
        or RANK[assessment.level] >= RANK[RiskLevel(conditions.risk_level_at_least)],
        conditions.owner_present is None or bool(account.owner_id) == conditions.owner_present,
        *(_field_holds(condition, facts.get(condition.field)) for condition in conditions.fields),
    ]
    return all(checks)


def _renews_within(value: str | None, today: date, days: int) -> bool:
    try:
        renewal = date.fromisoformat((value or "")[:10])
    except ValueError:
        return False
    return timedelta(0) <= renewal - today <= timedelta(days=days)


def _field_holds(condition: FieldCondition, value: str | None) -> bool:
    if condition.present is not None:
        return (value not in (None, "")) == condition.present
    if condition.equals is not None:
        return value is not None and value.lower() == condition.equals.lower()
    if condition.not_equals is not None:
        return value is None or value.lower() != condition.not_equals.lower()
    if condition.one_of is not None:
        return value is not None and value.lower() in {v.lower() for v in condition.one_of}
    try:
        number = float(value or "")
    except ValueError:
        return False
    if condition.above is not None:
        return number > condition.above
    return condition.below is not None and number < condition.below


# -- running a step -----------------------------------------------------------------------------


@dataclass(frozen=True, slots=True)
class StepInputs:
    """What a step needs besides the run and the account: resolved by the caller (I/O)."""

    today: date
    calendar: Calendar
    # CRM user ids by route: owner, csm, ae, manager (None where the account has none).
    routes: Mapping[str, str | None]
    fallback_owner: str | None = None
    previous_task_open: bool = True
    record_url: str | None = None
    channels: frozenset[str] = frozenset()  # the alert channels configured: slack, email


@dataclass(frozen=True, slots=True)
class StepPlan:
    step: Step
    actions: list[Action]
    skipped: str | None  # why the step did not run (the run ends)
    next_due: date | None  # when the next step is due; None: the run ends after this one


def plan_step(
    playbook: Playbook,
    run: Run,
    assessment: RiskAssessment | None,
    account: CrmAccount,
    inputs: StepInputs,
) -> StepPlan:
    """The actions of the run's next step, or why it is skipped, and when the one after is due."""
    spec, index = playbook.spec, run.next_step
    step = spec.steps[index]
    reason = _trigger_reason(run, assessment)
    skipped = None
    if "trigger_holds" in step.only_if and (reason is None or not trigger_holds(run, assessment)):
        skipped = "the trigger no longer holds"
    elif "previous_task_open" in step.only_if and not inputs.previous_task_open:
        skipped = "the previous step's task is no longer open"
    elif assessment is None:
        skipped = "the account has no assessment"
    elif reason is None:
        skipped = "the trigger no longer holds"
    if skipped or reason is None or assessment is None:
        return StepPlan(step, [], skipped, None)
    later = spec.steps[index + 1] if index + 1 < len(spec.steps) else None
    next_due = inputs.calendar.add_working_days(inputs.today, later.after_days) if later else None
    context = template_context(playbook, run, reason, assessment, account, inputs)
    work = _StepWork(playbook, run, index, reason, assessment, account, inputs, context)
    return StepPlan(step, work.actions(), None, next_due)


def _trigger_reason(run: Run, assessment: RiskAssessment | None) -> Reason | None:
    """The reason behind the run: its trigger's, or for a level trigger the worst one."""
    if assessment is None or not assessment.reasons:
        return None
    if run.trigger_key.startswith(LEVEL_KEY):
        return max(assessment.reasons, key=lambda r: RANK[r.severity])
    return next((r for r in assessment.reasons if r.key == run.trigger_key), None)


def template_context(
    playbook: Playbook,
    run: Run,
    reason: Reason,
    assessment: RiskAssessment,
    account: CrmAccount,
    inputs: StepInputs,
) -> dict[str, Any]:
    """Every variable a template may use (playbooks/templates.VARIABLES lists them)."""
    trend = assessment.trends.get(reason.key)
    step = playbook.spec.steps[run.next_step]
    return {
        "account": account,
        "reason": _reason_view(reason),
        # The account's other open reasons; people signals are under `people` instead.
        "other_reasons": [
            _reason_view(r)
            for r in assessment.reasons
            if r.key != reason.key and r.code not in PEOPLE_REASONS
        ],
        "reasons": [_reason_view(r) for r in assessment.reasons],
        "people": people_involved(assessment.reasons, reason),
        "risk": {"level": assessment.level.value, "score": assessment.score},
        "trend": _trend_view(trend),
        "sparkline": trend.sparkline if trend is not None else "",
        "playbook": {"name": playbook.spec.name, "title": playbook.spec.title},
        "step": {"name": step.name, "number": run.next_step + 1},
        "run": {"started_on": run.started_on.isoformat()},
        "today": inputs.today.isoformat(),
        "record_url": inputs.record_url or "",
    }


def _trend_view(trend: Trend | None) -> dict[str, Any]:
    """The metric behind the reason over the last 8 weeks; empty where none is drawn."""
    if trend is None or not trend.values:
        return {"label": "", "sparkline": "", "values": [], "first": "", "last": "", "weeks": 0}
    return {
        "weeks": len(trend.values),
        "label": trend.label,
        "sparkline": trend.sparkline,
        "values": list(trend.values),
        "first": _number(trend.values[0], trend.values),
        "last": _number(trend.values[-1], trend.values),
    }


def _number(value: float, alongside: Sequence[float]) -> str:
    """Whole numbers as such; one decimal for all when any value has one (9.9 to 4.0)."""
    whole = all(float(v).is_integer() for v in alongside)
    return f"{value:.0f}" if whole else f"{value:.1f}"


def _reason_view(reason: Reason) -> dict[str, Any]:
    return {
        "code": reason.code,
        "key": reason.key,
        "text": reason.text,
        "severity": reason.severity.value,
        "details": reason.details,
        "title": REASONS[reason.code].title if reason.code in REASONS else reason.code,
        "opportunity": reason.code in REASONS and REASONS[reason.code].opportunity,
    }


def people_involved(reasons: Sequence[Reason], trigger: Reason) -> list[dict[str, Any]]:
    """People signals on the account, newest decision-makers first: who to call."""
    people = []
    for reason in sorted(
        reasons, key=lambda r: PEOPLE_REASONS.index(r.code) if r.code in PEOPLE_REASONS else 9
    ):
        if reason.code not in PEOPLE_REASONS or not reason.details.get("person"):
            continue
        details = reason.details
        people.append(
            {
                "name": details["person"],
                "email": details.get("email"),
                "title": details.get("new_title") or details.get("previous_title"),
                "code": reason.code,
                "text": reason.text,
                "is_trigger": reason.key == trigger.key,
            }
        )
    return people


@dataclass(frozen=True, slots=True)
class _StepWork:
    """One step of one run: its actions, rendered and routed."""

    playbook: Playbook
    run: Run
    index: int
    reason: Reason
    assessment: RiskAssessment
    account: CrmAccount
    inputs: StepInputs
    context: Mapping[str, Any]

    def render(self, action: int, name: str, line: bool = False) -> str:
        template = self.playbook.templates[(self.index, action, name)]
        return render_line(template, self.context) if line else render_text(template, self.context)

    def route(self, assignee: str) -> str | None:
        """The CRM user for an assignee: a CSM or AE not mapped or not set falls back to the
        owner; anyone missing falls back to owners.fallback_owner."""
        if assignee.startswith("user:"):
            return assignee.removeprefix("user:")
        routes = self.inputs.routes
        found = routes.get(assignee)
        if not found and assignee in ("csm", "ae"):
            found = routes.get("owner")
        return found or self.inputs.fallback_owner

    def common(self, action: int, kind: str) -> dict[str, Any]:
        step = self.playbook.spec.steps[self.index]
        return {
            "idempotency_key": f"{self.run.run_id}:{step.name}:{action}:{kind}",
            "playbook": self.playbook.spec.name,
            "account_id": self.assessment.account_id,
            "account_crm_id": self.account.crm_id,
            "run_id": self.run.run_id,
            "step": step.name,
        }

    def actions(self) -> list[Action]:
        built: list[Action] = []
        for n, spec in enumerate(self.playbook.spec.steps[self.index].actions):
            action = self._build(n, spec)
            if action is not None:
                built.append(action)
        return built

    def _build(self, n: int, spec: ActionSpec) -> Action | None:  # noqa: PLR0911 - one per kind
        if spec.task:
            return self._task(n, spec.task)
        if spec.note:
            return self._note(n)
        if spec.field_update:
            return self._field_update(n, spec.field_update)
        if spec.notify_owner:
            return self._notify_owner(n, spec.notify_owner)
        if spec.slack:
            return self._slack(n, spec.slack)
        if spec.email:
            return self._email(n, spec.email)
        assert spec.sequence is not None  # noqa: S101 - ActionSpec holds exactly one kind
        return self._sequence(n, spec.sequence)

    def _task(self, n: int, spec: TaskAction) -> CreateTask:
        return CreateTask(
            **self.common(n, "task"),
            owner_id=self.route(spec.assignee),
            subject=self.render(n, "subject", line=True),
            body=self.render(n, "body"),
            due_date=self.inputs.calendar.add_working_days(self.inputs.today, spec.due_in_days),
            priority=spec.priority,
            task_type=spec.type,
            contact_email=self.reason.details.get("email"),
            risk_score=self.assessment.score,
        )

    def _note(self, n: int) -> CreateNote:
        return CreateNote(
            **self.common(n, "note"),
            owner_id=self.route("owner"),
            body=self.render(n, "body"),
            contact_email=self.reason.details.get("email"),
        )

    def _field_update(self, n: int, spec: FieldUpdateAction) -> UpdateField:
        return UpdateField(
            **self.common(n, "field"),
            owner_id=None,
            crm_field=spec.field,
            value=self.render(n, "value", line=True),
        )

    def _notify_owner(self, n: int, spec: NotifyAction) -> NotifyOwner | None:
        owner = self.route(spec.assignee)
        if owner is None:
            return None
        title, body = self.render(n, "title", line=True), self.render(n, "body")
        step = self.playbook.spec.steps[self.index]
        tasked = {self.route(a.task.assignee) for a in step.actions if a.task}
        fallback = None
        if owner not in tasked:
            # Not one of the run's tasks: ticking it off must not cancel the run's next steps.
            fallback = CreateTask(
                **{**self.common(n, "notify-fallback"), "run_id": "", "step": ""},
                owner_id=owner,
                subject=title,
                body=f"{body}\nNo action needed beyond reading this: it is for your information.",
                due_date=self.inputs.calendar.add_working_days(self.inputs.today, 1),
                priority="low",
                task_type="todo",
                risk_score=self.assessment.score,
            )
        return NotifyOwner(
            **self.common(n, "notify"), owner_id=owner, title=title, body=body, fallback=fallback
        )

    def _slack(self, n: int, spec: SlackAction) -> SendSlack | None:
        if "slack" not in self.inputs.channels:
            return None  # a shipped playbook's alert, and Slack is not set up: the task stands
        return SendSlack(
            **self.common(n, "slack"),
            owner_id=None if spec.channel else self.route(spec.assignee),
            channel=spec.channel,
            text=self.render(n, "text"),
        )

    def _email(self, n: int, spec: EmailAction) -> SendEmail | None:
        if "email" not in self.inputs.channels:
            return None
        return SendEmail(
            **self.common(n, "email"),
            owner_id=None if spec.to else self.route(spec.assignee),
            to=spec.to,
            subject=self.render(n, "subject", line=True),
            body=self.render(n, "body"),
        )

    def _sequence(self, n: int, spec: SequenceAction) -> EnrollInSequence | None:
        if not spec.sequence_id:
            return None  # shipped without one: the admin sets playbooks.<name>.sequence_id
        email = self.reason.details.get("email") if spec.contact == "signal_person" else None
        if spec.contact == "signal_person" and not email:
            return None
        who = self.reason.details.get("person") or email or spec.contact.replace("_", " ")
        fallback = CreateTask(
            **self.common(n, "sequence-fallback"),
            owner_id=self.route(spec.assignee),
            subject=f"Start sequence {spec.sequence_id} for {who} at {self.account.name}",
            body=(
                f"The playbook '{self.playbook.spec.title}' asks for {who} to be enrolled in "
                f"sequence {spec.sequence_id}, and the CRM could not do it automatically. "
                f"Please enroll them by hand.\nWhy: {self.reason.text}"
            ),
            due_date=self.inputs.calendar.add_working_days(self.inputs.today, 1),
            priority="medium",
            task_type="todo",
            contact_email=email,
            risk_score=self.assessment.score,
        )
        return EnrollInSequence(
            **self.common(n, "sequence"),
            owner_id=self.route(spec.assignee),
            sequence_id=spec.sequence_id,
            contact_email=email,
            fallback=fallback,
            contact_role=spec.contact,
        )
