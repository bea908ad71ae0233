"""Ending playbook runs: when the trigger clears (the rep's open tasks get a note, or are
completed, by the playbook's exit) and when the rep completes a task (the escalations after it
are cancelled).
"""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from integration.errors import CrmFatalError
from integration.risk.assess import RiskAssessment
from integration.store import history, keys
from integration.store import runs as stored_runs
from integration.store.history import Event
from playbooks.actions import CreateNote
from playbooks.engine import LEVEL_KEY, Playbook
from playbooks.execution import ExecutionContext, run_action
from playbooks.reads import open_tasks, run_by_id
from playbooks.runs import Run, RunStatus
from playbooks.steps_trail import action_event, ended_event

logger = logging.getLogger(__name__)


def end_run(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    status: RunStatus,
    now: datetime,
    assessment: RiskAssessment | None = None,
) -> bool:
    """Cancel the run's remaining steps; when its trigger cleared, tell (or complete) its open
    tasks as the playbook's exit says. False when a step of the run is running right now (or
    moved it meanwhile): the caller tries again later."""
    if not stored_runs.claim_step(context.redis, run.run_id, run.next_step):
        return False
    trail: list[Event] = []
    try:
        why = "the flag cleared" if status is RunStatus.CLEARED else "the rep completed the task"
        if status is RunStatus.CLEARED:
            # The CRM first: if it fails, the run stays as it was and the next evaluation,
            # still seeing the trigger cleared, tries again (the note's key makes it one note).
            trail += _tell_open_tasks(context, run, playbook, assessment, now)
        ended = run.ended(status, now, why)
        if not stored_runs.save_run(
            context.redis, run.account_id, run.slot, ended.to_json(), run.version, None
        ):
            return False
    finally:
        stored_runs.release_step(context.redis, run.run_id, run.next_step)
    if status is not RunStatus.CLEARED:  # a cleared run's end: playbooks/starts.py
        trail.append(ended_event(ended, now, why))
    history.record(context.redis, trail, context.config.history)
    logger.info(
        "playbook ended",
        extra={"account_id": run.account_id, "playbook": run.playbook, "why": why},
    )
    return True


def _tell_open_tasks(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    assessment: RiskAssessment | None,
    now: datetime,
) -> list[Event]:
    """The run's tasks still open get a note saying the flag cleared, or are completed; the
    note, for the trail."""
    open_ids = run.open_task_ids(open_tasks(context, [run.account_id])[run.account_id])
    exit_ = playbook.spec.exit.when_trigger_clears
    if not open_ids or exit_ == "nothing":
        return []
    if exit_ == "complete":
        for task_id in open_ids:
            # Out of open_tasks first: the CRM's webhook for our own completion, however soon
            # it comes, then finds the task closed and records no rep's outcome
            # (integration/jobs/crm_changes.py). Back in should the CRM refuse, for the retry.
            context.redis.srem(keys.open_tasks(run.account_id), task_id)
            try:
                context.crm.complete_task(task_id)
            except BaseException:
                context.redis.sadd(keys.open_tasks(run.account_id), task_id)
                raise
        return []
    account = context.crm.find_accounts([run.account_id]).get(run.account_id)
    if account is None:
        return []
    note = CreateNote(
        f"{run.run_id}:exit:note",
        run.playbook,
        run.account_id,
        account.crm_id,
        account.owner_id,
        cleared_text(playbook, run, assessment, len(open_ids), now),
        run_id=run.run_id,
        step="exit",
    )
    try:
        note_id = run_action(context, note, now)
    except CrmFatalError as exc:
        # A refusal no retry mends (an inactive owner, say): the run ends without it.
        logger.error(
            "CRM refused the note that a flag cleared; the run ends without it",
            extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(exc)},
        )
        return []
    return [action_event(context, note, note_id, now)]


def cleared_text(
    playbook: Playbook, run: Run, assessment: RiskAssessment | None, open_count: int, now: datetime
) -> str:
    if run.trigger_key.startswith(LEVEL_KEY):
        what = f"{run.trigger_key.removeprefix(LEVEL_KEY)} risk level"
    else:
        what = f"{run.trigger_key.split(':', 1)[0].replace('_', ' ')} flag"
    lines = [
        f"{playbook.spec.title}: the {what} that started this playbook on "
        f"{run.started_on.isoformat()} cleared on {now.date().isoformat()}, so its remaining "
        "steps are cancelled.",
        f"{open_count} task(s) from it are still open: close them if the conversation is done.",
    ]
    if assessment is not None and assessment.reasons:
        lines.append("Still flagged on this account:")
        lines += [f"- {reason.text}" for reason in assessment.reasons]
    else:
        lines.append("Nothing else is flagged on this account now.")
    return "\n".join(lines)


def task_completed(
    context: ExecutionContext,
    account_id: str,
    run_id: str,
    playbooks: Sequence[Playbook],
    now: datetime,
) -> str:
    """The rep completed one of a run's tasks: cancel the escalations after it (by config)."""
    by_name = {playbook.name: playbook for playbook in playbooks}
    run = run_by_id(context, account_id, run_id)
    if run is None or not run.active or run.playbook not in by_name:
        return "no active run"
    playbook = by_name[run.playbook]
    if playbook.spec.exit.when_task_completed != "cancel_remaining":
        return "run continues"
    if not end_run(context, run, playbook, RunStatus.COMPLETED, now):
        # A step of it is running this moment: it ends the run instead of going on.
        stored_runs.ask_to_complete(context.redis, account_id, run.run_id)
        return "remaining steps cancelled once the step running now is done"
    return "remaining steps cancelled"
