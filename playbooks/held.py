"""Tasks a cap held back: sent on a later working day, highest risk first, as the caps allow;
dropped only when the flag behind them has cleared (a task for it now would be a false one).
"""

from __future__ import annotations

import logging
from collections.abc import Mapping, Sequence
from dataclasses import replace
from datetime import date, datetime

from integration.errors import CrmFatalError, CrmRetriableError
from integration.store import caps, history
from integration.store import runs as stored_runs
from integration.store.history import Event
from playbooks.actions import CreateTask
from playbooks.engine import Playbook, trigger_holds
from playbooks.execution import ExecutionContext, held_task, run_action
from playbooks.reads import HELD_PREFIX, assessments, calendar, run_by_id
from playbooks.runs import RunStatus
from playbooks.steps_trail import action_event

logger = logging.getLogger(__name__)

HELD_PAGE = 500
SAVE_ATTEMPTS = 5


def held_name(task: CreateTask) -> str:
    """How a held task is named among its run's tasks until it goes out."""
    return f"{HELD_PREFIX}{caps.member(task.idempotency_key)}"


def release_held_tasks(
    context: ExecutionContext, now: datetime, playbooks: Sequence[Playbook] = ()
) -> int:
    """On a working day, send held tasks (highest risk first) as far as today's caps allow;
    an assignee at their cap does not keep the others' tasks waiting. The step after a
    released task (an escalation) waits its after_days from the release."""
    today = now.date()
    if not calendar(context).is_working_day(today):
        return 0
    released, start = 0, 0
    trail: list[Event] = []  # each task sent, with its CRM record, for the audit trail
    try:
        while page := caps.held(context.redis, HELD_PAGE, start):
            start += len(page)
            for member, score, held_on, raw in page:
                if held_on >= today:
                    continue
                task = held_task(raw)
                if not _still_wanted(context, task):
                    caps.release(context.redis, member)
                    caps.forget(context.redis, member)
                    start -= 1
                    continue
                sent = _send(context, task, member, score, held_on, now)
                if sent is not None:
                    released += 1
                    start -= 1
                    _add_task_to_run(context, task, sent, {p.name: p for p in playbooks}, now)
                    trail.append(action_event(context, task, sent, now, released=True))
    finally:
        history.record(context.redis, trail, context.config.history)
    return released


def _send(
    context: ExecutionContext,
    task: CreateTask,
    member: str,
    score: float,
    held_on: date,
    now: datetime,
) -> str | None:
    """The task's CRM id once created; None when it stays held (a cap, the CRM failing)."""
    today = now.date()
    limits = context.config.work.caps
    if not caps.try_take(
        context.redis,
        task.owner_id,
        task.account_id,
        today,
        limits.tasks_per_assignee_per_day,
        limits.tasks_per_account_per_week,
    ):
        return None
    if not caps.release(context.redis, member):
        caps.give_back(context.redis, task.owner_id, task.account_id, today)
        return None  # another worker took it
    # Due as many working days after its release as it was after it was held.
    working = calendar(context)
    due = working.add_working_days(today, working.working_days_between(held_on, task.due_date))
    try:
        task_id = run_action(context, replace(task, due_date=due), now)
    except (CrmRetriableError, CrmFatalError) as exc:
        caps.put_back(context.redis, member, score)  # held still: never lost
        caps.give_back(context.redis, task.owner_id, task.account_id, today)
        logger.warning(
            "a held task could not be created yet; it stays held",
            extra={"account_id": task.account_id, "error": str(exc)},
        )
        return None
    caps.forget(context.redis, member)
    return task_id


def _still_wanted(context: ExecutionContext, task: CreateTask) -> bool:
    """A playbook task goes out only while its run has not ended early and its trigger still
    holds in the latest judgement; an alert's FYI task (no run) always does."""
    if not task.run_id:
        return True
    run = run_by_id(context, task.account_id, task.run_id)
    if run is None or run.status in (RunStatus.CLEARED, RunStatus.COMPLETED):
        return False
    return trigger_holds(run, assessments(context, [task.account_id]).get(task.account_id))


def _add_task_to_run(
    context: ExecutionContext,
    task: CreateTask,
    task_id: str,
    playbooks: Mapping[str, Playbook],
    now: datetime,
) -> None:
    """The released task takes its held name's place among its run's tasks, and the step
    after it is due its after_days from today (compared by the run's version, so a step saved
    meanwhile is not undone: then it is tried once more)."""
    for _ in range(SAVE_ATTEMPTS):
        run = run_by_id(context, task.account_id, task.run_id) if task.run_id else None
        if run is None:
            return
        held = held_name(task)
        ids = [t for t in run.tasks.get(task.step, ()) if t != held]
        moved = replace(run, tasks={**run.tasks, task.step: (*ids, task_id)})
        steps = playbooks[run.playbook].spec.steps if run.playbook in playbooks else ()
        waits = run.active and 0 < run.next_step < len(steps)
        if waits and steps[run.next_step - 1].name == task.step:
            after = steps[run.next_step].after_days
            moved = replace(moved, due_on=calendar(context).add_working_days(now.date(), after))
        if stored_runs.save_run(
            context.redis, run.account_id, run.slot, moved.to_json(), run.version, moved.due_on
        ):
            return
