"""The playbook engine: a change in an account's risk becomes a list of CRM actions.

Pure: it reads definitions shipped with the package and the values passed in, and returns actions
whose idempotency keys make running the same plan twice harmless.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from datetime import date, timedelta
from importlib import resources
from typing import Any, Literal

import yaml
from jinja2 import Template
from jinja2.sandbox import SandboxedEnvironment
from pydantic import BaseModel, ConfigDict, Field

from adapters.protocol import CrmAccount
from integration.config.schema import PlaybookSettings
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import Reason
from playbooks.actions import Action, CreateNote, CreateTask, EnrollInSequence, NotifyOwner

_TEMPLATES = SandboxedEnvironment(autoescape=False, trim_blocks=True, lstrip_blocks=True)  # noqa: S701 - CRM task text is plain text, not HTML
SATURDAY = 5


class TaskTemplate(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)

    type: str = "todo"
    priority: Literal["low", "medium", "high"] = "medium"
    due_in_days: int = Field(3, ge=0)
    subject: str
    body: str


class PlaybookDefinition(BaseModel):
    """One file in playbooks/definitions/."""

    model_config = ConfigDict(extra="forbid", frozen=True)

    name: str
    title: str
    when: str
    cooldown_days: int = Field(0, ge=0)
    task: TaskTemplate
    note: str | None = None  # a template; when set, the playbook also logs a note


@dataclass(frozen=True, slots=True)
class Playbook:
    """A definition with the admin's overrides applied and its templates compiled."""

    name: str
    when: str
    cooldown_days: int
    task: TaskTemplate
    subject: Template
    body: Template
    note: Template | None = None
    sequence_id: str | None = None
    notify_owner: bool = False


def load_catalogue() -> dict[str, PlaybookDefinition]:
    """Every playbook shipped with the package, by name."""
    folder = resources.files("playbooks").joinpath("definitions")
    catalogue = {}
    for item in sorted(folder.iterdir(), key=lambda entry: entry.name):
        if item.name.endswith(".yaml"):
            definition = PlaybookDefinition.model_validate(yaml.safe_load(item.read_text()))
            catalogue[definition.name] = definition
    return catalogue


def resolve_playbooks(
    catalogue: Mapping[str, PlaybookDefinition], chosen: Mapping[str, PlaybookSettings]
) -> list[Playbook]:
    """The playbooks that run: those the config lists (all shipped ones if it lists none)."""
    selected = chosen or {name: PlaybookSettings() for name in catalogue}
    playbooks = []
    for name, settings in selected.items():
        if not settings.enabled:
            continue
        definition = catalogue[name]
        overrides = {
            key: value
            for key, value in (
                ("priority", settings.priority),
                ("due_in_days", settings.due_in_days),
            )
            if value is not None
        }
        task = definition.task.model_copy(update=overrides)
        cooldown = settings.cooldown_days
        playbooks.append(
            Playbook(
                name=name,
                when=definition.when,
                cooldown_days=definition.cooldown_days if cooldown is None else cooldown,
                task=task,
                subject=_TEMPLATES.from_string(task.subject),
                body=_TEMPLATES.from_string(task.body),
                note=_TEMPLATES.from_string(definition.note) if definition.note else None,
                sequence_id=settings.sequence_id,
                notify_owner=settings.notify_owner,
            )
        )
    return playbooks


def plan_actions(
    before: RiskAssessment | None,
    after: RiskAssessment,
    account: CrmAccount,
    playbooks: Sequence[Playbook],
    last_fired: Mapping[str, date],
    today: date,
    fallback_owner: str | None,
) -> list[Action]:
    """Actions for reasons new in `after`; a reason already flagged before starts nothing."""
    flagged_before = before.reason_keys if before else frozenset()
    actions: list[Action] = []
    for reason in after.reasons:
        if reason.key in flagged_before:
            continue
        for playbook in playbooks:
            if playbook.when != reason.code or _cooling_down(playbook, last_fired, today):
                continue
            others = [other for other in after.reasons if other.key != reason.key]
            work = _Work(playbook, reason, others, after.account_id, account, today, fallback_owner)
            actions.extend(work.actions())
    return actions


def _cooling_down(playbook: Playbook, last_fired: Mapping[str, date], today: date) -> bool:
    fired = last_fired.get(playbook.name)
    return bool(playbook.cooldown_days and fired and (today - fired).days < playbook.cooldown_days)


@dataclass(frozen=True, slots=True)
class _Work:
    """One playbook answering one reason on one account."""

    playbook: Playbook
    reason: Reason
    others: Sequence[Reason]
    account_id: str
    account: CrmAccount
    today: date
    fallback_owner: str | None

    def key(self, kind: str) -> str:
        # A playbook with a cooldown fires once per raise of its flag, so the day it was raised
        # is part of the key; without one the reason key alone (one per person) names the work.
        window = self.today.isoformat() if self.playbook.cooldown_days else "once"
        suffix = "" if kind == "task" else f":{kind}"
        return f"{self.playbook.name}:{self.account_id}:{self.reason.key}:{window}{suffix}"

    def context(self) -> dict[str, Any]:
        return {"account": self.account, "reason": self.reason, "other_reasons": self.others}

    def owner(self) -> str | None:
        return self.account.owner_id or self.fallback_owner

    def actions(self) -> list[Action]:
        task = self.task()
        actions: list[Action] = [task]
        email = self.reason.details.get("email")
        owner = self.owner()
        if self.playbook.note is not None:
            actions.append(
                CreateNote(
                    self.key("note"),
                    self.playbook.name,
                    self.account_id,
                    self.account.crm_id,
                    owner,
                    self.playbook.note.render(self.context()).strip(),
                    email,
                )
            )
        if self.playbook.sequence_id and email:
            actions.append(self.enrollment(self.playbook.sequence_id, email))
        if self.playbook.notify_owner and owner:
            actions.append(
                NotifyOwner(
                    self.key("notify"),
                    self.playbook.name,
                    self.account_id,
                    self.account.crm_id,
                    owner,
                    task.subject,
                    self.reason.text,
                )
            )
        return actions

    def task(self) -> CreateTask:
        task = self.playbook.task
        context = self.context()
        return CreateTask(
            idempotency_key=self.key("task"),
            playbook=self.playbook.name,
            account_id=self.account_id,
            account_crm_id=self.account.crm_id,
            owner_id=self.owner(),
            subject=" ".join(self.playbook.subject.render(context).split()),
            body=self.playbook.body.render(context).strip(),
            due_date=next_working_day(self.today + timedelta(days=task.due_in_days)),
            priority=task.priority,
            task_type=task.type,
            contact_email=self.reason.details.get("email"),
        )

    def enrollment(self, sequence_id: str, email: str) -> EnrollInSequence:
        person = self.reason.details.get("person") or email
        fallback = CreateTask(
            idempotency_key=self.key("sequence-fallback"),
            playbook=self.playbook.name,
            account_id=self.account_id,
            account_crm_id=self.account.crm_id,
            owner_id=self.owner(),
            subject=f"Start sequence {sequence_id} for {person}",
            body=(
                f"The playbook '{self.playbook.name}' asks for {person} ({email}) to be "
                f"enrolled in sequence {sequence_id}, and the CRM could not do it "
                "automatically. Please enroll them by hand.\n"
                f"Why: {self.reason.text}"
            ),
            due_date=next_working_day(self.today + timedelta(days=1)),
            priority=self.playbook.task.priority,
            task_type="todo",
            contact_email=email,
        )
        return EnrollInSequence(
            self.key("sequence"),
            self.playbook.name,
            self.account_id,
            self.account.crm_id,
            self.owner(),
            sequence_id,
            email,
            fallback,
        )


def next_working_day(day: date) -> date:
    """A task due on a weekend is due the Monday after."""
    while day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return day
