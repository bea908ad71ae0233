"""Planning one step of a run: its actions, rendered from the playbook's templates and routed
to people, or why it is skipped, and when the step after it is due.

Pure, like the engine: the caller passes what the step needs (StepInputs) and runs the actions.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date
from typing import Any

from adapters.protocol import CrmAccount
from integration.config.playbooks import (
    ActionSpec,
    EmailAction,
    FieldUpdateAction,
    NotifyAction,
    SequenceAction,
    SlackAction,
    Step,
    TaskAction,
)
from integration.risk.assess import RiskAssessment
from integration.risk.catalogue import REASONS
from integration.risk.reasons import Reason
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
from playbooks.engine import LEVEL_KEY, RANK, Playbook, trigger_holds
from playbooks.runs import Calendar, Run
from playbooks.templates import render_line, render_text

# Reasons whose person is worth calling: the task names them under "People involved".
PEOPLE_REASONS = ("new_decision_maker", "champion_joined", "champion_left")


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
