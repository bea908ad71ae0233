"""The shape of a playbook, as shipped in playbooks/definitions/ and as an admin writes it in
config.yaml under `playbooks:`.

A playbook is a trigger (reasons newly raised, or a risk level reached), conditions on the
account, and ordered steps, each after some working days and guarded, each with actions. This
module checks the shape only; playbooks/validation.py checks what the names mean (reason codes,
template variables, mapped fields), since that needs the risk rules' catalogue.
"""

from __future__ import annotations

import re
from datetime import date
from typing import Annotated, Any, Literal

from pydantic import AfterValidator, BaseModel, ConfigDict, Field, model_validator

Level = Literal["low", "medium", "high"]
Priority = Literal["low", "medium", "high"]
Name = Annotated[str, Field(pattern=r"^[a-z][a-z0-9_]*$", max_length=60)]
# Who gets the work: the account owner, a role mapped to a CRM field (account_facts.csm / .ae),
# the owner's manager, or a named CRM user (user:<id>). Whoever is missing falls back to
# owners.fallback_owner.
ASSIGNEE = re.compile(r"^(owner|csm|ae|manager|user:[A-Za-z0-9_.@-]{1,80})$")


def _assignee(value: str) -> str:
    if not ASSIGNEE.match(value):
        msg = f"assignee must be owner, csm, ae, manager or user:<CRM user id>, got {value!r}"
        raise ValueError(msg)
    return value


Assignee = Annotated[str, AfterValidator(_assignee)]
Guard = Literal["trigger_holds", "previous_task_open"]
ContactRole = Literal["signal_person", "champion", "primary_contact"]
WEEKDAYS = ("mon", "tue", "wed", "thu", "fri", "sat", "sun")


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class Trigger(_Strict):
    """What starts the playbook: one of these reason codes newly raised, or the account's risk
    level newly reaching `risk_level` (from below it)."""

    reasons: tuple[Name, ...] = ()
    risk_level: Level | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> Trigger:
        if bool(self.reasons) == bool(self.risk_level):
            msg = "give either reasons (a list of reason codes) or risk_level, not both or neither"
            raise ValueError(msg)
        return self


class FieldCondition(_Strict):
    """A mapped CRM fact (an account_facts name) compared with a value; exactly one comparison."""

    field: Name
    equals: str | None = None
    not_equals: str | None = None
    one_of: tuple[str, ...] | None = None
    above: float | None = None
    below: float | None = None
    present: bool | None = None

    @model_validator(mode="after")
    def _one_comparison(self) -> FieldCondition:
        given = [
            name
            for name in ("equals", "not_equals", "one_of", "above", "below", "present")
            if getattr(self, name) is not None
        ]
        if len(given) != 1:
            msg = "give exactly one of equals, not_equals, one_of, above, below, present"
            raise ValueError(msg)
        return self


class Conditions(_Strict):
    """All must hold when the trigger fires; an empty list or null means no condition."""

    segments: tuple[str, ...] = ()  # account_facts.segment is one of these
    plans: tuple[str, ...] = ()  # account_facts.plan is one of these
    renewal_within_days: int | None = Field(None, ge=1, le=730)
    fields: tuple[FieldCondition, ...] = ()
    reasons_present: tuple[Name, ...] = ()  # each of these codes is flagged too
    reasons_absent: tuple[Name, ...] = ()  # none of these codes is flagged
    risk_level_at_least: Level | None = None
    owner_present: bool | None = None  # the account has (true) / lacks (false) an owner


class TaskAction(_Strict):
    """A native CRM task (subject and body are Jinja2 templates, rendered sandboxed)."""

    assignee: Assignee = "owner"
    type: Literal["todo", "call", "email", "meeting"] = "todo"
    priority: Priority = "medium"
    due_in_days: int = Field(2, ge=0, le=365)  # working days after the step runs
    subject: str = Field(min_length=1, max_length=500)
    body: str = Field(min_length=1)


class NoteAction(_Strict):
    body: str = Field(min_length=1)


class FieldUpdateAction(_Strict):
    """Write a value on the account: `field` is a name from `fields` or `account_facts`."""

    field: Name
    value: str  # a template


class SequenceAction(_Strict):
    """Enroll a person in a HubSpot sequence / Salesforce cadence, sent as the assignee. With no
    sequence_id (the shipped default) the action is skipped: set one in config.yaml."""

    sequence_id: str | None = Field(None, max_length=40)
    contact: ContactRole = "signal_person"
    assignee: Assignee = "owner"


class NotifyAction(_Strict):
    """An alert inside the CRM (Salesforce custom notification) to the assignee."""

    assignee: Assignee = "owner"
    title: str = Field(min_length=1, max_length=250)
    body: str = Field(min_length=1)


class SlackAction(_Strict):
    """A Slack message: a DM to the assignee (found by their CRM email), or to `channel`."""

    assignee: Assignee = "owner"
    channel: str | None = Field(None, max_length=80)
    text: str = Field(min_length=1)


class EmailAction(_Strict):
    """An email to the assignee (their CRM email) or to a fixed address."""

    assignee: Assignee = "owner"
    to: str | None = Field(None, pattern=r"^[^@\s]+@[^@\s]+\.[^@\s]+$")
    subject: str = Field(min_length=1, max_length=300)
    body: str = Field(min_length=1)


ACTION_KINDS = ("task", "note", "field_update", "sequence", "notify_owner", "slack", "email")


class ActionSpec(_Strict):
    """One action, written as a mapping with one key naming its kind, e.g. `- task: {...}`."""

    task: TaskAction | None = None
    note: NoteAction | None = None
    field_update: FieldUpdateAction | None = None
    sequence: SequenceAction | None = None
    notify_owner: NotifyAction | None = None
    slack: SlackAction | None = None
    email: EmailAction | None = None

    @model_validator(mode="after")
    def _one_kind(self) -> ActionSpec:
        if len(self.kinds()) != 1:
            msg = f"an action has exactly one of: {', '.join(ACTION_KINDS)}"
            raise ValueError(msg)
        return self

    def kinds(self) -> list[str]:
        return [kind for kind in ACTION_KINDS if getattr(self, kind) is not None]

    @property
    def kind(self) -> str:
        return self.kinds()[0]

    @property
    def body(self) -> BaseModel:
        value = getattr(self, self.kind)
        assert isinstance(value, BaseModel)  # noqa: S101 - _one_kind guarantees it
        return value


class Step(_Strict):
    name: Name
    # Working days after the previous step ran (the first step: after the trigger fired).
    after_days: int = Field(0, ge=0, le=365)
    # Run only if the trigger still holds / the previous step's task is still open; otherwise
    # the step and the ones after it are skipped and the run ends.
    only_if: tuple[Guard, ...] = ("trigger_holds",)
    actions: tuple[ActionSpec, ...]

    @model_validator(mode="after")
    def _does_something(self) -> Step:
        # Checked here, not with min_length: an action with a typo would also read as "empty".
        if not self.actions:
            msg = "a step needs at least one action"
            raise ValueError(msg)
        return self


class StepTuning(_Strict):
    """An admin's change to one shipped step, by name."""

    enabled: bool = True
    after_days: int | None = Field(None, ge=0, le=365)
    only_if: tuple[Guard, ...] | None = None


class Exit(_Strict):
    # When the trigger clears: note on the account naming the open tasks, complete them, or
    # leave them as they are. Remaining steps are cancelled in every case.
    when_trigger_clears: Literal["note", "complete", "nothing"] = "note"
    # When the rep completes one of the run's tasks in the CRM: cancel the steps after it
    # (escalations), or carry on.
    when_task_completed: Literal["cancel_remaining", "continue"] = "cancel_remaining"


class PlaybookSpec(_Strict):
    """A whole playbook: a shipped file, or an admin's own under `playbooks:` in config.yaml."""

    name: Name
    title: str = Field(min_length=1, max_length=120)
    enabled: bool = True
    trigger: Trigger
    conditions: Conditions = Conditions()
    # Once a run starts, the playbook starts no other run on the account for this many days,
    # however often its trigger flaps or however many of its reasons are raised at once.
    cooldown_days: int = Field(0, ge=0, le=365)
    steps: tuple[Step, ...]
    exit: Exit = Exit()
    # Urgent playbooks (champion left, renewal at risk) may spend the API budget's reserve,
    # which bulk field refreshes and other playbooks leave alone (adapters/budget.py).
    urgent: bool = False
    # A control group: this share (percent) of the accounts that would start the playbook are
    # tracked the same way but get no action, chosen by a stable hash of account and playbook,
    # so `integration report` can compare treated with control. `control: never` keeps every
    # account treated whatever control_pct says (a playbook for critical reasons).
    control_pct: float = Field(0, ge=0, le=50)
    control: Literal["sample", "never"] = "sample"

    @model_validator(mode="after")
    def _unique_step_names(self) -> PlaybookSpec:
        if not self.steps:
            msg = "a playbook needs at least one step"
            raise ValueError(msg)
        names = [step.name for step in self.steps]
        repeated = sorted({name for name in names if names.count(name) > 1})
        if repeated:
            msg = f"step names must be unique: {', '.join(repeated)} repeated"
            raise ValueError(msg)
        return self

    @model_validator(mode="after")
    def _control_sampled(self) -> PlaybookSpec:
        # A share with `control: never` would hold no account out: say so, not ignore it.
        if self.control == "never" and self.control_pct > 0:
            msg = (
                f"control_pct is {self.control_pct:g} but this playbook says control: never "
                "(every account it starts on is treated): drop control_pct, or set "
                "control: sample to keep a control group"
            )
            raise ValueError(msg)
        return self


class PlaybookEntry(_Strict):
    """What config.yaml says about one playbook. For a shipped one, every key is optional and
    tunes it; a new one needs title, trigger and steps."""

    enabled: bool = True
    title: str | None = None
    trigger: Trigger | None = None
    conditions: Conditions | None = None
    cooldown_days: int | None = Field(None, ge=0, le=365)
    # Replaces the shipped steps; to change some of them, use tune_steps.
    steps: tuple[Step, ...] | None = None
    # Shipped steps changed by name: after_days, only_if, or enabled: false to leave one out.
    tune_steps: dict[Name, StepTuning] = Field(default_factory=dict)
    exit: Exit | None = None
    urgent: bool | None = None
    control_pct: float | None = Field(None, ge=0, le=50)
    control: Literal["sample", "never"] | None = None
    # Shortcuts over every action of the playbook:
    sequence_id: str | None = Field(None, max_length=40)  # for sequence actions without one
    priority: Priority | None = None  # every task
    due_in_days: int | None = Field(None, ge=0, le=365)  # every task
    notify_owner: bool = False  # also alert the owner in the CRM at the first step
    slack_channel: str | None = Field(None, max_length=80)  # Slack actions post here, not a DM


class Caps(_Strict):
    """New tasks beyond these wait for the next working day, highest risk first."""

    tasks_per_assignee_per_day: int | None = Field(10, ge=1, le=1000)
    tasks_per_account_per_week: int | None = Field(3, ge=1, le=1000)


class Work(_Strict):
    """When playbook steps run and how much work they may create."""

    working_days: tuple[Literal["mon", "tue", "wed", "thu", "fri", "sat", "sun"], ...] = (
        "mon",
        "tue",
        "wed",
        "thu",
        "fri",
    )
    holidays: tuple[date, ...] = ()
    caps: Caps = Caps()

    @model_validator(mode="after")
    def _some_working_day(self) -> Work:
        if not self.working_days:
            msg = "working_days needs at least one day"
            raise ValueError(msg)
        return self

    def weekday_numbers(self) -> frozenset[int]:
        return frozenset(WEEKDAYS.index(day) for day in self.working_days)


def merged_definition(shipped: dict[str, Any] | None, entry: dict[str, Any]) -> dict[str, Any]:
    """The raw definition an admin's entry makes of a shipped one (or of nothing, for a new
    playbook): whole keys replace and shortcuts apply to every action. Validated afterwards as
    a PlaybookSpec; `tune_steps` is applied to that (playbooks/catalogue.py)."""
    merged: dict[str, Any] = dict(shipped or {})
    for key in (
        "title",
        "trigger",
        "conditions",
        "cooldown_days",
        "exit",
        "enabled",
        "urgent",
        "control_pct",
        "control",
    ):
        if key in entry:
            merged[key] = entry[key]
    if isinstance(entry.get("steps"), list):
        merged["steps"] = entry["steps"]
    merged["steps"] = [_with_shortcuts(step, entry) for step in merged.get("steps") or []]
    return merged


# What the notify_owner shortcut adds to the first step that runs.
OWNER_ALERT = NotifyAction(
    title="{{ playbook.title }}: {{ account.name }}", body="{{ reason.text }}"
)


def _with_shortcuts(step: object, entry: dict[str, Any]) -> object:
    if not isinstance(step, dict) or not isinstance(step.get("actions"), list):
        return step
    actions = []
    for action in step["actions"]:
        if isinstance(action, dict):
            action = dict(action)
            task = action.get("task")
            if isinstance(task, dict):
                shortcut = {
                    k: entry[k] for k in ("priority", "due_in_days") if entry.get(k) is not None
                }
                action["task"] = {**task, **shortcut}
            sequence = action.get("sequence")
            if (
                isinstance(sequence, dict)
                and not sequence.get("sequence_id")
                and entry.get("sequence_id")
            ):
                action["sequence"] = {**sequence, "sequence_id": entry["sequence_id"]}
            slack = action.get("slack")
            if isinstance(slack, dict) and entry.get("slack_channel"):
                action["slack"] = {**slack, "channel": entry["slack_channel"]}
        actions.append(action)
    return {**step, "actions": actions}
