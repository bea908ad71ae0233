"""Moving playbook runs along (the edge around the pure engine): start runs when an evaluation
raises their trigger, run each step when it is due, end runs when the trigger clears or the rep
completes the task.

Steps wait durably in Redis (integration/store/runs.py); `run_due_steps` is called every minute
by `rq cron` (integration/jobs/cron.py). Each step runs once: a claim keeps two workers off the
same step, the stored run is compared before it is saved, and every action's idempotency key
makes a repeated step create nothing new.
"""

from __future__ import annotations

import json
import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import datetime

from adapters.protocol import CrmAccount
from integration.errors import CrmFatalError, CrmRetriableError
from integration.risk.assess import RiskAssessment, assessment_from_json
from integration.store import caps, keys
from integration.store import runs as stored_runs
from playbooks.actions import CreateNote, CreateTask
from playbooks.engine import (
    Playbook,
    StepInputs,
    plan_step,
    runs_to_clear,
    runs_to_start,
)
from playbooks.execution import (
    HELD,
    ExecutionContext,
    held_task,
    run_action,
    run_actions,
    user,
)
from playbooks.runs import Calendar, Run, RunStatus

logger = logging.getLogger(__name__)

HELD_PREFIX = "held:"
DUE_BATCH = 500
HELD_BATCH = 500


@dataclass(frozen=True, slots=True)
class Judged:
    """An account as one evaluation judged it."""

    account: CrmAccount
    before: RiskAssessment | None
    after: RiskAssessment


def calendar(context: ExecutionContext) -> Calendar:
    work = context.config.work
    return Calendar(work.weekday_numbers(), frozenset(work.holidays))


def advance(
    context: ExecutionContext,
    judged: Sequence[Judged],
    playbooks: Sequence[Playbook],
    now: datetime,
    on_refused: Callable[[Run], None] | None = None,
) -> None:
    """After an evaluation: end runs whose trigger cleared, start runs whose trigger was newly
    raised, and run the first steps that are due at once (in batches across accounts)."""
    by_name = {playbook.name: playbook for playbook in playbooks}
    ids = [item.after.account_id for item in judged]
    stored = stored_runs.load_runs(context.redis, ids)
    today = now.date()
    due_now: list[tuple[Run, Playbook, CrmAccount, RiskAssessment]] = []
    for item in judged:
        runs = {slot: Run.from_json(raw) for slot, raw in stored[item.after.account_id].items()}
        for run in runs_to_clear(runs.values(), item.after):
            if run.playbook not in by_name:
                continue
            try:
                end_run(context, run, by_name[run.playbook], RunStatus.CLEARED, now, item.after)
            except (CrmRetriableError, CrmFatalError) as exc:
                logger.warning(
                    "could not tell the CRM a flag cleared; the next evaluation tries again",
                    extra={
                        "account_id": run.account_id,
                        "playbook": run.playbook,
                        "error": str(exc),
                    },
                )
        for run in runs_to_start(item.before, item.after, item.account, playbooks, runs, today):
            first = by_name[run.playbook].spec.steps[0]
            due = (
                calendar(context).add_working_days(today, first.after_days)
                if first.after_days
                else today
            )
            run = replace(run, due_on=due)
            if not stored_runs.save_run(
                context.redis, run.account_id, run.slot, run.to_json(), None, due
            ):
                continue  # another worker started it
            logger.info(
                "playbook started",
                extra={
                    "account_id": run.account_id,
                    "playbook": run.playbook,
                    "trigger": run.trigger_key,
                },
            )
            if due <= today:
                due_now.append((run, by_name[run.playbook], item.account, item.after))
    run_steps(context, due_now, now, on_refused)


def run_due_steps(
    context: ExecutionContext,
    playbooks: Sequence[Playbook],
    now: datetime,
    on_refused: Callable[[Run], None] | None = None,
) -> int:
    """Every minute: release held tasks the caps now allow, then run every step that is due."""
    release_held_tasks(context, now)
    by_name = {playbook.name: playbook for playbook in playbooks}
    total = 0
    while due := stored_runs.due_runs(context.redis, now.date(), DUE_BATCH):
        ids = sorted({account_id for account_id, _ in due})
        stored = stored_runs.load_runs(context.redis, ids)
        accounts = context.crm.find_accounts(ids)
        assessments = _assessments(context, ids)
        items = []
        for account_id, slot in due:
            raw = stored[account_id].get(slot)
            run = Run.from_json(raw) if raw else None
            if (
                run is None
                or not run.active
                or run.playbook not in by_name
                or account_id not in accounts
            ):
                stored_runs.forget_due(context.redis, account_id, slot)
                continue
            items.append(
                (run, by_name[run.playbook], accounts[account_id], assessments.get(account_id))
            )
        ran = run_steps(context, items, now, on_refused)
        total += ran
        if ran == 0:
            break  # what is left is claimed by another worker or failing: the next minute
    return total


def run_steps(
    context: ExecutionContext,
    items: Sequence[tuple[Run, Playbook, CrmAccount, RiskAssessment | None]],
    now: datetime,
    on_refused: Callable[[Run], None] | None = None,
) -> int:
    """Run each run's next step (claimed, so once), all their tasks and notes in batches; save
    each run whose actions all went through.

    A run whose action failed in a way a retry may mend keeps its step due: the next minute
    tries again, and what was done already is not done twice. A refusal (4xx) no retry mends
    costs the others nothing: that step waits, unscheduled, and `on_refused` hands it to a job
    of its own, which fails into the failed registry with the CRM's words for `integration
    failed` / `retry` (without `on_refused`, the refusal is raised)."""
    open_tasks = _open_tasks(context, sorted({run.account_id for run, *_ in items}))
    planned = []
    for run, playbook, account, assessment in items:
        if not stored_runs.claim_step(context.redis, run.run_id, run.next_step):
            continue
        inputs = _inputs(
            context, run, playbook, account, open_tasks.get(run.account_id, set()), now
        )
        planned.append((run, plan_step(playbook, run, assessment, account, inputs)))
    actions = [action for _, plan in planned for action in plan.actions]
    outcomes = run_actions(context, actions, now)
    ran = 0
    for run, plan in planned:
        failed = [
            outcomes.failed[a.idempotency_key]
            for a in plan.actions
            if a.idempotency_key in outcomes.failed
        ]
        if failed:
            stored_runs.release_step(context.redis, run.run_id, run.next_step)
            if not any(isinstance(error, CrmRetriableError) for error in failed):
                _refused(context, run, failed[0], on_refused)
            continue
        # A task held by a cap is the run's too: it counts as open until it goes out.
        task_ids = tuple(
            _held_name(a)
            if outcomes.done[a.idempotency_key] == HELD
            else outcomes.done[a.idempotency_key]
            for a in plan.actions
            if isinstance(a, CreateTask) and a.idempotency_key in outcomes.done
        )
        moved = run.after_step(plan.step.name, now, plan.skipped or "ran", task_ids, plan.next_due)
        stored_runs.save_run(
            context.redis, run.account_id, run.slot, moved.to_json(), run.next_step, moved.due_on
        )
        ran += 1
    return ran


def _refused(
    context: ExecutionContext,
    run: Run,
    error: Exception,
    on_refused: Callable[[Run], None] | None,
) -> None:
    logger.error(
        "CRM refused a playbook action; the step gets a job of its own",
        extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(error)},
    )
    if on_refused is None:
        raise error
    stored_runs.save_run(
        context.redis, run.account_id, run.slot, run.to_json(), run.next_step, None
    )
    on_refused(run)


def _inputs(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    account: CrmAccount,
    open_ids: set[str],
    now: datetime,
) -> StepInputs:
    step = playbook.spec.steps[run.next_step]
    routes: dict[str, str | None] = {
        "owner": account.owner_id,
        "csm": account.facts.get("csm"),
        "ae": account.facts.get("ae"),
        "manager": None,
    }
    if any(getattr(action.body, "assignee", "") == "manager" for action in step.actions):
        routes["manager"] = _manager(context, account.owner_id)
    previous = playbook.spec.steps[run.next_step - 1].name if run.next_step else None
    previous_ids = run.tasks.get(previous, ()) if previous else ()
    return StepInputs(
        today=now.date(),
        calendar=calendar(context),
        routes=routes,
        fallback_owner=context.config.owners.fallback_owner,
        previous_task_open=any(
            task in open_ids or task.startswith(HELD_PREFIX) for task in previous_ids
        ),
        record_url=context.crm.record_url(account.crm_id),
        channels=frozenset(
            name for name in ("slack", "email") if getattr(context.config.channels, name)
        ),
    )


def _manager(context: ExecutionContext, owner_id: str | None) -> str | None:
    """The owner's manager: from the CRM where it knows (Salesforce User.ManagerId), else the
    config's owners.managers."""
    if not owner_id:
        return None
    person = user(context, owner_id)
    if person is not None and person.manager_id:
        return person.manager_id
    return context.config.owners.managers.get(owner_id)


def _open_tasks(context: ExecutionContext, account_ids: Sequence[str]) -> dict[str, set[str]]:
    pipe = context.redis.pipeline(transaction=False)
    for account_id in account_ids:
        pipe.smembers(keys.open_tasks(account_id))
    return {
        account_id: {keys.text(t) for t in reply}
        for account_id, reply in zip(account_ids, pipe.execute(), strict=True)
    }


def _assessments(
    context: ExecutionContext, account_ids: Sequence[str]
) -> dict[str, RiskAssessment]:
    raws = context.redis.mget([keys.assessment(a) for a in account_ids]) if account_ids else []
    return {
        account_id: assessment_from_json(json.loads(raw))
        for account_id, raw in zip(account_ids, raws, strict=True)
        if raw
    }


# -- ending runs --------------------------------------------------------------------------------


def end_run(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    status: RunStatus,
    now: datetime,
    assessment: RiskAssessment | None = None,
) -> bool:
    """Cancel the run's remaining steps; when its trigger cleared, tell (or complete) its open
    tasks as the playbook's exit says."""
    why = "the flag cleared" if status is RunStatus.CLEARED else "the rep completed the task"
    if status is RunStatus.CLEARED:
        # The CRM first: if it fails, the run stays active and the next evaluation, still
        # seeing the trigger cleared, tries again (the note's key makes it one note).
        _tell_open_tasks(context, run, playbook, assessment, now)
    ended = run.ended(status, now, why)
    if not stored_runs.save_run(
        context.redis, run.account_id, run.slot, ended.to_json(), run.next_step, None
    ):
        return False
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
) -> None:
    """The run's tasks still open get a note saying the flag cleared, or are completed."""
    open_ids = run.open_task_ids(_open_tasks(context, [run.account_id])[run.account_id])
    exit_ = playbook.spec.exit.when_trigger_clears
    if not open_ids or exit_ == "nothing":
        return
    if exit_ == "complete":
        for task_id in open_ids:
            context.crm.complete_task(task_id)
            context.redis.srem(keys.open_tasks(run.account_id), task_id)
        return
    account = context.crm.find_accounts([run.account_id]).get(run.account_id)
    if account is None:
        return
    note = CreateNote(
        f"{run.run_id}:exit:note",
        run.playbook,
        run.account_id,
        account.crm_id,
        account.owner_id,
        _cleared_text(playbook, run, assessment, len(open_ids), now),
        run_id=run.run_id,
        step="exit",
    )
    run_action(context, note, now)


def _cleared_text(
    playbook: Playbook, run: Run, assessment: RiskAssessment | None, open_count: int, now: datetime
) -> str:
    what = run.trigger_key.split(":", 1)[0].replace("_", " ")
    lines = [
        f"{playbook.spec.title}: the {what} flag that started this playbook on "
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
    for raw in stored_runs.load_runs(context.redis, [account_id])[account_id].values():
        run = Run.from_json(raw)
        if run.run_id != run_id or not run.active or run.playbook not in by_name:
            continue
        playbook = by_name[run.playbook]
        if playbook.spec.exit.when_task_completed != "cancel_remaining":
            return "run continues"
        end_run(context, run, playbook, RunStatus.COMPLETED, now)
        return "remaining steps cancelled"
    return "no active run"


# -- held tasks ---------------------------------------------------------------------------------


def release_held_tasks(context: ExecutionContext, now: datetime) -> int:
    """On a working day, send held tasks (highest risk first) as far as today's caps allow."""
    today = now.date()
    if not calendar(context).is_working_day(today):
        return 0
    released = 0
    for member, score, held_on, raw in caps.held(context.redis, HELD_BATCH):
        if held_on >= today:
            continue
        task = held_task(raw)
        if task.run_id and _run_exited(context, task):
            caps.release(context.redis, member)  # its flag cleared meanwhile: a false task now
            caps.forget(context.redis, member)
            continue
        limits = context.config.work.caps
        if not caps.try_take(
            context.redis,
            task.owner_id,
            task.account_id,
            today,
            limits.tasks_per_assignee_per_day,
            limits.tasks_per_account_per_week,
        ):
            continue
        if not caps.release(context.redis, member):
            continue  # another worker took it
        # Due as many working days after its release as it was after it was held.
        days = calendar(context).working_days_between(held_on, task.due_date)
        due = calendar(context).add_working_days(today, days)
        try:
            task_id = run_action(context, replace(task, due_date=due), now)
        except (CrmRetriableError, CrmFatalError) as exc:
            caps.put_back(context.redis, member, score)  # held still: never lost
            logger.warning(
                "a held task could not be created yet; it stays held",
                extra={"account_id": task.account_id, "error": str(exc)},
            )
            continue
        caps.forget(context.redis, member)
        _add_task_to_run(context, task, task_id)
        released += 1
    return released


def _run_exited(context: ExecutionContext, task: CreateTask) -> bool:
    """Whether the task's run ended early: its flag cleared, or the rep completed its task.
    A run that simply ran its last step (done) still wants the task."""
    exits = (RunStatus.CLEARED.value, RunStatus.COMPLETED.value)
    runs = stored_runs.load_runs(context.redis, [task.account_id])[task.account_id]
    return any(raw["run_id"] == task.run_id and raw["status"] in exits for raw in runs.values())


def _held_name(task: CreateTask) -> str:
    return f"{HELD_PREFIX}{caps.member(task.idempotency_key)}"


def _add_task_to_run(context: ExecutionContext, task: CreateTask, task_id: str) -> None:
    """The released task takes its place among its run's tasks."""
    for slot, raw in stored_runs.load_runs(context.redis, [task.account_id])[
        task.account_id
    ].items():
        run = Run.from_json(raw)
        if run.run_id == task.run_id:
            held = _held_name(task)
            ids = [t for t in run.tasks.get(task.step, ()) if t != held]
            tasks = {**run.tasks, task.step: (*ids, task_id)}
            moved = replace(run, tasks=tasks)
            stored_runs.save_run(
                context.redis, run.account_id, slot, moved.to_json(), run.next_step, run.due_on
            )


def run_one_step(
    context: ExecutionContext,
    account_id: str,
    slot: str,
    playbooks: Sequence[Playbook],
    now: datetime,
) -> str:
    """One run's waiting step on its own (after a refusal): a refusal again is raised."""
    raw = stored_runs.load_runs(context.redis, [account_id])[account_id].get(slot)
    run = Run.from_json(raw) if raw else None
    by_name = {playbook.name: playbook for playbook in playbooks}
    if run is None or not run.active or run.playbook not in by_name:
        return "no active run"
    account = context.crm.find_accounts([account_id]).get(account_id)
    if account is None:
        return "no such account in the CRM"
    assessment = _assessments(context, [account_id]).get(account_id)
    ran = run_steps(context, [(run, by_name[run.playbook], account, assessment)], now)
    return f"{run.playbook}: step {run.next_step + 1} {'ran' if ran else 'is claimed elsewhere'}"


def report(context: ExecutionContext) -> Mapping[str, int]:
    """Figures for `integration report`: steps waiting and tasks held by a cap."""
    return {
        "steps_waiting": stored_runs.count_due(context.redis),
        "tasks_held": caps.held_count(context.redis),
    }
