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
from integration.config import PlaybookSettings
from integration.risk import Reason, RiskAssessment
from playbooks.actions import CreateTask

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


@dataclass(frozen=True, slots=True)
class Playbook:
    """A definition with the admin's overrides applied and its templates compiled."""

    name: str
    when: str
    cooldown_days: int
    task: TaskTemplate
    subject: Template
    body: Template


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
) -> list[CreateTask]:
    """Tasks for reasons that are new in `after`; a reason already flagged before starts nothing."""
    flagged_before = before.reason_keys if before else frozenset()
    actions: list[CreateTask] = []
    for reason in after.reasons:
        if reason.key in flagged_before:
            continue
        for playbook in playbooks:
            if playbook.when != reason.code or _cooling_down(playbook, last_fired, today):
                continue
            others = [other for other in after.reasons if other.key != reason.key]
            actions.append(
                _create_task(
                    playbook, reason, others, after.account_id, account, today, fallback_owner
                )
            )
    return actions


def _cooling_down(playbook: Playbook, last_fired: Mapping[str, date], today: date) -> bool:
    fired = last_fired.get(playbook.name)
    return bool(playbook.cooldown_days and fired and (today - fired).days < playbook.cooldown_days)


def _create_task(
    playbook: Playbook,
    reason: Reason,
    others: Sequence[Reason],
    account_id: str,
    account: CrmAccount,
    today: date,
    fallback_owner: str | None,
) -> CreateTask:
    context: dict[str, Any] = {"account": account, "reason": reason, "other_reasons": others}
    # A playbook with a cooldown fires once per raise of its flag, so the day it was raised is part
    # of the key; without one the reason key alone (one per person) names the work.
    window = today.isoformat() if playbook.cooldown_days else "once"
    return CreateTask(
        idempotency_key=f"{playbook.name}:{account_id}:{reason.key}:{window}",
        playbook=playbook.name,
        account_id=account_id,
        account_crm_id=account.crm_id,
        owner_id=account.owner_id or fallback_owner,
        subject=" ".join(playbook.subject.render(context).split()),
        body=playbook.body.render(context).strip(),
        due_date=next_working_day(today + timedelta(days=playbook.task.due_in_days)),
        priority=playbook.task.priority,
        task_type=playbook.task.type,
        contact_email=reason.details.get("email"),
    )


def next_working_day(day: date) -> date:
    """A task due on a weekend is due the Monday after."""
    while day.weekday() >= SATURDAY:
        day += timedelta(days=1)
    return day
