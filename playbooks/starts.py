"""Starting runs at the edge (for playbooks/waterfall.py::advance): each run counted toward its
playbook's control group in Redis, then saved; a control run the config no longer holds out
switched to treated (`save_treated`); and the audit-trail entries for runs started, switched
and cleared (integration/store/history.py: run_started, run_treated, run_ended), which
`integration report` counts.
"""

from __future__ import annotations

from collections.abc import Sequence
from dataclasses import replace
from datetime import date, datetime

from integration.risk.assess import RiskAssessment
from integration.store import control_groups
from integration.store import runs as stored_runs
from integration.store.history import Event, event
from playbooks.control import ControlCount, samples, share_basis_points
from playbooks.engine import LEVEL_KEY, Playbook
from playbooks.execution import ExecutionContext
from playbooks.runs import Run, RunStatus

# reason_code of a run started by a risk level (trigger `level:<level>`), not by one reason.
LEVEL_REASON = "risk_level"


def control_counts(
    context: ExecutionContext, playbooks: Sequence[Playbook]
) -> dict[str, ControlCount]:
    """Each sampling playbook's runs so far (one read; none when no playbook samples)."""
    if not any(samples(playbook.spec) for playbook in playbooks):
        return {}
    return {
        name: ControlCount(started, control)
        for name, (started, control) in control_groups.counts(context.redis).items()
    }


def save_started(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    due: date,
    counts: dict[str, ControlCount],
) -> Run | None:
    """Save a run the engine started, due on `due` unless it is a control run (never due: no
    step runs). A sampling playbook counts it first, and a control run keeps its place only if
    the group, counted with every worker's runs, stays within its share; `counts` is updated.
    None when another worker started the run first."""
    spec = playbook.spec
    control = run.control
    if samples(spec):
        started, kept, control = control_groups.count_start(
            context.redis, spec.name, run.control, share_basis_points(spec)
        )
        counts[spec.name] = ControlCount(started, kept)
    run = replace(run, control=control, due_on=None if control else due)
    if stored_runs.save_run(
        context.redis, run.account_id, run.slot, run.to_json(), None, run.due_on
    ):
        return run
    if samples(spec):  # the other worker counted it
        control_groups.uncount_start(context.redis, spec.name, control)
        count = counts[spec.name]
        counts[spec.name] = ControlCount(count.started - 1, count.control - int(control))
    return None


def save_treated(
    context: ExecutionContext, run: Run, due: date, counts: dict[str, ControlCount]
) -> Run | None:
    """Switch a control run to treated, due on `due` (playbooks/control.py leaves_control),
    saved against its version so that only one worker switches it; its place goes back to
    the control group and `counts` is updated. None when another worker moved it first."""
    treated = replace(run, control=False, due_on=due)
    if not stored_runs.save_run(
        context.redis, run.account_id, run.slot, treated.to_json(), run.version, due
    ):
        return None
    control_groups.give_back(context.redis, run.playbook)
    if run.playbook in counts:
        count = counts[run.playbook]
        counts[run.playbook] = ControlCount(count.started, max(count.control - 1, 0))
    return replace(treated, version=run.version + 1)


def treated_event(run: Run, why: str, now: datetime) -> Event:
    """run_treated: a control run switched to treated; the report counts it as treated."""
    return event(
        run.account_id, "run_treated", now, playbook=run.playbook, run_id=run.run_id, why=why
    )


def started_event(run: Run, after: RiskAssessment, now: datetime) -> Event:
    """run_started: the reason behind the trigger (or the risk level) and the run's group."""
    reason = next((r for r in after.reasons if r.key == run.trigger_key), None)
    return event(
        run.account_id,
        "run_started",
        now,
        playbook=run.playbook,
        run_id=run.run_id,
        trigger_key=run.trigger_key,
        reason_code=reason.code if reason else _trigger_code(run),
        severity=(reason.severity if reason else after.level).value,
        control=run.control,
    )


def cleared_event(run: Run, now: datetime) -> Event:
    """run_ended as the trigger cleared (treated and control runs alike)."""
    return event(
        run.account_id,
        "run_ended",
        now,
        playbook=run.playbook,
        run_id=run.run_id,
        status=RunStatus.CLEARED.value,
        why="the flag cleared",
        control=run.control,
    )


def _trigger_code(run: Run) -> str:
    return LEVEL_REASON if run.trigger_key.startswith(LEVEL_KEY) else run.trigger_key
