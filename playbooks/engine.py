"""The playbook engine: which runs a change in an account's risk starts or ends
(playbooks/planning.py plans each step of a run).

Pure: it reads compiled playbooks and the values passed in (assessments, the account, the runs
so far) and returns runs. Run ids (playbook, account, trigger, the day it started) make the same
evaluation start nothing twice.
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
    Conditions,
    FieldCondition,
    PlaybookSpec,
    Trigger,
)
from integration.risk.assess import RiskAssessment
from integration.risk.reasons import RiskLevel
from playbooks.control import ControlCount, in_control, leaves_control
from playbooks.runs import Run, RunStatus
from playbooks.templates import compile_template

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
    controls: Mapping[str, ControlCount] | None = None,
) -> list[Run]:
    """A run for each playbook whose trigger `after` newly meets and whose conditions hold,
    unless the same trigger's run is still going or the playbook is cooling down.

    A run is a control run (`Run.control`: tracked, no step runs) when the playbook keeps a
    control group and the account falls in it (playbooks/control.py), given `controls`: each
    playbook's runs started so far (none given: no control run, as the group has no room)."""
    counts = dict(controls or {})
    started: list[Run] = []
    for playbook in playbooks:
        spec = playbook.spec
        for key in newly_triggered(spec.trigger, before, after):
            current = runs.get(f"{spec.name}|{key}")
            if current is not None and _still_going(current, today):
                continue
            if _cooling_down(spec, [*runs.values(), *started], today):
                continue
            if not conditions_hold(spec.conditions, after, account, today):
                continue
            run_id = f"{spec.name}:{after.account_id}:{key}:{today.isoformat()}"
            if current is not None and current.run_id.startswith(run_id):
                run_id = f"{run_id}#{_attempt(current.run_id) + 1}"  # back the same day
            count = counts.get(spec.name, ControlCount())
            control = in_control(spec, after.account_id, count)
            counts[spec.name] = count.after(control)
            started.append(
                Run(run_id, spec.name, after.account_id, key, today, due_on=today, control=control)
            )
    return started


def started_already(
    before: RiskAssessment | None,
    after: RiskAssessment,
    playbooks: Sequence[Playbook],
    runs: Mapping[str, Run],
    today: date,
) -> list[Run]:
    """Runs an earlier try of this same evaluation started today: their trigger is newly met
    (the assessments were not kept, so the retry sees the same change) and their slot holds
    them. A worker lost between saving them and writing their trail left them unrecorded;
    writing run_started again is harmless (the report counts a run_id once)."""
    found = []
    for playbook in playbooks:
        for key in newly_triggered(playbook.spec.trigger, before, after):
            current = runs.get(f"{playbook.name}|{key}")
            if current is not None and current.started_on == today and _still_going(current, today):
                found.append(current)
    return found


def runs_to_treat(
    runs: Iterable[Run], after: RiskAssessment, playbooks: Mapping[str, Playbook]
) -> list[tuple[Run, str]]:
    """Active control runs, their trigger still held, whose playbook no longer holds the
    account out (the admin set `control: never` or lowered `control_pct` since they
    started: playbooks/control.py), each with why: they are to be treated from now on."""
    found = []
    for run in runs:
        if not (run.active and run.control and run.playbook in playbooks):
            continue
        why = leaves_control(playbooks[run.playbook].spec, run.account_id)
        if why is not None and trigger_holds(run, after):
            found.append((run, why))
    return found


def _still_going(run: Run, today: date) -> bool:
    """A run that holds its slot: going, or started today and not cleared (an evaluation
    retried after it started one must not start it twice)."""
    return run.active or (run.started_on == today and run.status is not RunStatus.CLEARED)


def _attempt(run_id: str) -> int:
    return int(run_id.rsplit("#", 1)[1]) if "#" in run_id else 1


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
