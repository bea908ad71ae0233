"""The playbooks that run: the shipped ones with the admin's changes, plus the admin's own, each
checked for what its names mean. Every problem is reported with its YAML path, all at once, so
`integration validate` refuses a misspelt reason code instead of a playbook that never fires.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Mapping
from typing import Any

from pydantic import ValidationError

from integration.config.playbooks import (
    OWNER_ALERT,
    ActionSpec,
    PlaybookSpec,
    Step,
    StepTuning,
    merged_definition,
)
from integration.config.schema import Config
from integration.errors import ConfigError, InvalidConfigError
from integration.risk.catalogue import REASONS
from playbooks.engine import TEMPLATE_FIELDS, Playbook, compile_playbook, shipped_definitions
from playbooks.templates import problems


def resolve_playbooks(
    config: Config, shipped: Mapping[str, dict[str, Any]] | None = None
) -> list[Playbook]:
    """The enabled playbooks, compiled; InvalidConfigError with every problem found."""
    shipped = shipped_definitions() if shipped is None else shipped
    errors: list[ConfigError] = []
    specs: list[PlaybookSpec] = []
    names = sorted({*shipped, *config.playbooks})
    for name in names:
        entry = config.playbooks.get(name)
        raw_entry = entry.model_dump(exclude_unset=True, mode="json") if entry else {}
        where = f"playbooks.{name}" if entry else f"playbooks/definitions/{name}.yaml"
        if name not in shipped and not {"trigger", "steps"} <= set(raw_entry):
            close = difflib.get_close_matches(name, list(shipped), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            msg = f"unknown playbook {name!r}"
            hint += "a new playbook needs title, trigger and steps; shipped: " + ", ".join(shipped)
            errors.append(ConfigError(f"playbooks.{name}", msg, hint))
            continue
        errors.extend(_unknown_tuned_steps(name, shipped.get(name), raw_entry))
        merged = merged_definition(shipped.get(name), raw_entry)
        merged["name"] = name
        try:
            spec = PlaybookSpec.model_validate(merged)
        except ValidationError as exc:
            errors.extend(_shape_error(where, error) for error in exc.errors())
            continue
        if not spec.enabled:
            continue
        # Idle steps out first, then the admin's tuning: a delay the admin set is kept.
        spec = with_tuning(without_idle_steps(spec), entry.tune_steps if entry else {})
        if entry is not None and entry.notify_owner:
            spec = with_owner_alert(spec)
        own_steps = isinstance(raw_entry.get("steps"), list) or name not in shipped
        tuned = set(entry.tune_steps) if entry and not own_steps else set()
        errors.extend(check_playbook(spec, config, where, own_steps, tuned))
        errors.extend(_unused_shortcuts(spec, raw_entry, where))
        specs.append(spec)
    if errors:
        raise InvalidConfigError(errors)
    return [compile_playbook(spec) for spec in specs]


def _unknown_tuned_steps(
    name: str, shipped: Mapping[str, Any] | None, entry: Mapping[str, Any]
) -> list[ConfigError]:
    tuning = entry.get("tune_steps")
    if not isinstance(tuning, dict):
        return []
    known = [step.get("name") for step in (shipped or {}).get("steps", [])]
    return [
        ConfigError(
            f"playbooks.{name}.tune_steps.{step}",
            f"no step {step!r} in this playbook",
            f"its steps: {', '.join(map(str, known))}",
        )
        for step in tuning
        if step not in known
    ]


def _shape_error(where: str, error: Mapping[str, Any]) -> ConfigError:
    path = where
    for part in error["loc"]:
        path += f"[{part}]" if isinstance(part, int) else f".{part}"
    if error["type"] == "missing":
        return ConfigError(path, "required key is missing")
    if error["type"] == "extra_forbidden":
        return ConfigError(path, f"unknown key {error['loc'][-1]!r}")
    return ConfigError(path, str(error["msg"]).removeprefix("Value error, "))


def with_tuning(spec: PlaybookSpec, tuning: Mapping[str, StepTuning]) -> PlaybookSpec:
    """Shipped steps changed by name (a step left out as idle is simply not there to tune)."""
    steps = []
    for step in spec.steps:
        change = tuning.get(step.name)
        if change is None:
            steps.append(step)
        elif change.enabled:
            updates = {"after_days": change.after_days, "only_if": change.only_if}
            steps.append(
                step.model_copy(update={k: v for k, v in updates.items() if v is not None})
            )
    return spec.model_copy(update={"steps": tuple(steps)}) if steps else spec


def with_owner_alert(spec: PlaybookSpec) -> PlaybookSpec:
    """The notify_owner shortcut: an alert in the CRM at the first step that runs."""
    first, *rest = spec.steps
    alert = ActionSpec(notify_owner=OWNER_ALERT)
    first = first.model_copy(update={"actions": (*first.actions, alert)})
    return spec.model_copy(update={"steps": (first, *rest)})


def _unused_shortcuts(
    spec: PlaybookSpec, entry: Mapping[str, Any], where: str
) -> list[ConfigError]:
    """A shortcut for an action the playbook does not have would do nothing: say so."""
    kinds = {action.kind for step in spec.steps for action in step.actions}
    errors = []
    for key, kind in (("sequence_id", "sequence"), ("slack_channel", "slack")):
        if entry.get(key) and kind not in kinds:
            msg = f"this playbook has no {kind} action, so {key} would do nothing"
            errors.append(ConfigError(f"{where}.{key}", msg))
    return errors


def without_idle_steps(spec: PlaybookSpec) -> PlaybookSpec:
    """Leave out steps with nothing to do: a shipped automated touch (a sequence) whose
    sequence id the admin has not set. The step after it takes its place, and its delay."""
    steps: list[Step] = []
    carried: int | None = None
    for step in spec.steps:
        idle = all(action.sequence and not action.sequence.sequence_id for action in step.actions)
        if idle:
            carried = step.after_days if carried is None else carried
            continue
        if carried is not None:
            guards = tuple(g for g in step.only_if if g != "previous_task_open" or steps)
            step = step.model_copy(update={"after_days": carried, "only_if": guards})
            carried = None
        steps.append(step)
    if not steps:
        return spec
    return spec.model_copy(update={"steps": tuple(steps)})


def check_playbook(
    spec: PlaybookSpec,
    config: Config,
    where: str,
    own_steps: bool = True,
    tuned: frozenset[str] | set[str] = frozenset(),
) -> list[ConfigError]:
    """What the names in a well-shaped playbook mean: reason codes, fields, templates,
    channels, and whether its steps can happen in the order written. A shipped step's Slack or
    email alert is skipped while that channel is not set up; an admin's own must have it."""
    errors = [
        *_check_codes(f"{where}.trigger.reasons", spec.trigger.reasons),
        *_check_codes(f"{where}.conditions.reasons_present", spec.conditions.reasons_present),
        *_check_codes(f"{where}.conditions.reasons_absent", spec.conditions.reasons_absent),
    ]
    facts = config.account_facts
    mapped_facts = frozenset(facts.crm_fields())
    for n, condition in enumerate(spec.conditions.fields):
        if condition.field not in mapped_facts:
            errors.append(
                _field_error(
                    f"{where}.conditions.fields[{n}].field", condition.field, facts.names()
                )
            )
    for key, needs in (
        ("segments", "segment"),
        ("plans", "plan"),
        ("renewal_within_days", "renewal_date"),
    ):
        if getattr(spec.conditions, key) and needs not in mapped_facts:
            msg = f"this condition reads account_facts.{needs}, which is not mapped"
            errors.append(
                ConfigError(f"{where}.conditions.{key}", msg, f"set account_facts.{needs}")
            )
    codes = spec.trigger.reasons or tuple(REASONS)
    details = frozenset().union(*(REASONS[c].details for c in codes if c in REASONS))
    names_person = bool(spec.trigger.reasons) and all(
        REASONS[c].names_person for c in spec.trigger.reasons if c in REASONS
    )
    writable = {name for name, crm in config.fields.model_dump().items() if crm} | mapped_facts
    for s, step in enumerate(spec.steps):
        # A step the admin tuned is named by its tuning, where the mistake was made.
        at = f"{where}.tune_steps.{step.name}" if step.name in tuned else f"{where}.steps[{s}]"
        errors.extend(_check_order(spec, s, at))
        for a, action in enumerate(step.actions):
            here = f"{at}.actions[{a}].{action.kind}"
            body = action.body
            for field_name in TEMPLATE_FIELDS[action.kind]:
                for problem in problems(getattr(body, field_name), details, mapped_facts):
                    errors.append(ConfigError(f"{here}.{field_name}", problem))
            errors.extend(_check_action(here, action, names_person, writable, config, own_steps))
    return errors


def _check_action(
    here: str,
    action: ActionSpec,
    names_person: bool,
    writable: set[str],
    config: Config,
    own_steps: bool,
) -> list[ConfigError]:
    errors = []
    if action.sequence and action.sequence.contact == "signal_person" and not names_person:
        msg = "enrolls the signal's person, but the trigger's reasons name no person"
        hint = "use contact: primary_contact or champion, or a people reason as trigger"
        errors.append(ConfigError(f"{here}.contact", msg, hint))
    if own_steps and action.sequence and not action.sequence.sequence_id:
        msg = "a sequence action in your own playbook needs a sequence_id"
        errors.append(
            ConfigError(f"{here}.sequence_id", msg, "the HubSpot sequence or Salesforce cadence id")
        )
    if action.field_update and action.field_update.field not in writable:
        errors.append(_field_error(f"{here}.field", action.field_update.field, writable))
    if own_steps and (
        (action.slack and config.channels.slack is None)
        or (action.email and config.channels.email is None)
    ):
        article = "an" if action.kind == "email" else "a"
        msg = f"{article} {action.kind} action needs channels.{action.kind} configured"
        errors.append(ConfigError(here, msg, f"add channels.{action.kind} to config.yaml"))
    return errors


def _check_codes(path: str, codes: Iterable[str]) -> list[ConfigError]:
    errors = []
    for n, code in enumerate(codes):
        if code not in REASONS:
            close = difflib.get_close_matches(code, list(REASONS), n=1)
            hint = f"did you mean {close[0]!r}? " if close else ""
            errors.append(
                ConfigError(
                    f"{path}[{n}]",
                    f"unknown reason code {code!r}",
                    hint + "known: " + ", ".join(sorted(REASONS)),
                )
            )
    return errors


def _field_error(path: str, name: str, known: Iterable[str]) -> ConfigError:
    close = difflib.get_close_matches(name, list(known), n=1)
    hint = f"did you mean {close[0]!r}? " if close else ""
    return ConfigError(
        path,
        f"unknown or unmapped field {name!r}",
        hint + "map it under account_facts (or fields) first",
    )


def _check_order(spec: PlaybookSpec, index: int, at: str) -> list[ConfigError]:
    step = spec.steps[index]
    if "previous_task_open" not in step.only_if:
        return []
    if index == 0:
        msg = "the first step has no previous step whose task could be open"
        return [ConfigError(f"{at}.only_if", msg, "remove previous_task_open here")]
    previous = spec.steps[index - 1]
    if not any(action.kind == "task" for action in previous.actions):
        msg = (
            f"waits on the previous step's task, but step {previous.name!r} creates no task, "
            "so this step could never run"
        )
        return [ConfigError(f"{at}.only_if", msg)]
    if step.after_days == 0:
        msg = "escalates on the same day the task was created: give after_days of 1 or more"
        return [ConfigError(f"{at}.after_days", msg)]
    return []
