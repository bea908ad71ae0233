"""Moving playbook runs along (the edge around the pure engine): start runs when an evaluation
raises their trigger, run each step when it is due, end runs when the trigger clears
(playbooks/exits.py), send what a cap held (playbooks/held.py).

Steps wait durably in Redis (integration/store/runs.py); `run_due_steps` is called every minute
by `rq cron` (integration/jobs/cron.py). Each step runs once: a claim keeps two workers (and the
evaluation clearing the run) off the same step, the run is read again once claimed and saved
only if its version is unchanged, and every action's idempotency key makes a repeated step
create nothing new.
"""

from __future__ import annotations

import logging
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from datetime import date, datetime

from jinja2 import TemplateError

from adapters.protocol import CrmAccount
from integration.errors import CrmFatalError, CrmRetriableError
from integration.risk.assess import RiskAssessment
from integration.store import caps, history, waiting
from integration.store import runs as stored_runs
from integration.store.history import Event
from playbooks.actions import CreateTask
from playbooks.batches import Outcomes, run_actions
from playbooks.engine import (
    Playbook,
    runs_to_clear,
    runs_to_start,
    runs_to_treat,
    started_already,
)
from playbooks.execution import HELD, ExecutionContext, remember_created
from playbooks.exits import end_run, task_completed
from playbooks.held import held_name, release_held_tasks
from playbooks.planning import StepInputs, StepPlan, plan_step
from playbooks.reads import HELD_PREFIX, assessments, calendar, manager_of, open_tasks, runs_of
from playbooks.runs import Run, RunStatus
from playbooks.starts import (
    cleared_event,
    control_counts,
    save_started,
    save_treated,
    started_event,
    treated_event,
)
from playbooks.steps_trail import ended_event, made_tasks, settled_events, step_event

logger = logging.getLogger(__name__)

__all__ = [
    "Judged",
    "advance",
    "calendar",
    "report",
    "run_due_steps",
    "run_one_step",
    "task_completed",
]

DUE_PAGE = 500
CLEAR_RETRY_SECONDS = 60
DUE_MOST = 20_000  # steps one minute's job takes on; the rest wait for the next minute


@dataclass(frozen=True, slots=True)
class Judged:
    """An account as one evaluation judged it."""

    account: CrmAccount
    before: RiskAssessment | None
    after: RiskAssessment


Refused = Callable[[Run], None]


def advance(
    context: ExecutionContext,
    judged: Sequence[Judged],
    playbooks: Sequence[Playbook],
    now: datetime,
    on_refused: Refused | None = None,
) -> None:
    """After an evaluation: end runs whose trigger cleared, treat control runs the config no
    longer holds out (the admin lowered control_pct or set `control: never`), start runs whose
    trigger was newly raised, and run the first steps that are due at once (in batches across
    accounts).

    Each account is judged at least daily, so a config change reaches every control run within
    a day. A retry of an evaluation whose worker was lost writes the trail of the runs it had
    saved already (their run_started entries: the report counts a run_id once)."""
    by_name = {playbook.name: playbook for playbook in playbooks}
    stored = runs_of(context, [item.after.account_id for item in judged])
    counts = control_counts(context, playbooks)
    today = now.date()
    due_now = []
    trail = []  # run_started, run_treated and run_ended entries, written in one round trip
    for item in judged:
        runs = stored[item.after.account_id]
        for run in runs_to_clear(runs.values(), item.after):
            if run.playbook in by_name and _clear(
                context, run, by_name[run.playbook], item.after, now
            ):
                trail.append(cleared_event(run, now))
        for control_run, why in runs_to_treat(runs.values(), item.after, by_name):
            playbook = by_name[control_run.playbook]
            due = first_due(context, playbook, today)
            treated = save_treated(context, control_run, due, counts)
            if treated is None:
                continue  # another worker moved it
            trail.append(treated_event(treated, why, now))
            logger.info(
                "control run treated",
                extra={"account_id": treated.account_id, "playbook": treated.playbook, "why": why},
            )
            if due <= today:
                due_now.append((treated, playbook, item.account, item.after))
        for run in started_already(item.before, item.after, playbooks, runs, today):
            trail.append(started_event(run, item.after, now))  # a retry: see the docstring
        for new in runs_to_start(
            item.before, item.after, item.account, playbooks, runs, today, counts
        ):
            due = first_due(context, by_name[new.playbook], today)
            # A control run is tracked (started, cleared) but never due: no step runs.
            saved = save_started(context, new, by_name[new.playbook], due, counts)
            if saved is None:
                continue  # another worker started it
            run = saved
            trail.append(started_event(run, item.after, now))
            logger.info(
                "playbook started",
                extra={
                    "account_id": run.account_id,
                    "playbook": run.playbook,
                    "trigger": run.trigger_key,
                    "control": run.control,
                },
            )
            if not run.control and due <= today:
                due_now.append(
                    (replace(run, version=1), by_name[run.playbook], item.account, item.after)
                )
    history.record(context.redis, trail, context.config.history)
    run_steps(context, due_now, now, on_refused, judged_now=True)


def first_due(context: ExecutionContext, playbook: Playbook, today: date) -> date:
    """When a run starting (or treated) today takes its first step."""
    after_days = playbook.spec.steps[0].after_days
    return calendar(context).add_working_days(today, after_days) if after_days else today


def _clear(
    context: ExecutionContext, run: Run, playbook: Playbook, after: RiskAssessment, now: datetime
) -> bool:
    """End a run whose trigger cleared (True when it ended); if its step is running, or the CRM
    fails, the account is judged again in a minute (the clear is then tried again)."""
    try:
        ended = end_run(context, run, playbook, RunStatus.CLEARED, now, after)
    except (CrmRetriableError, CrmFatalError) as exc:
        logger.warning(
            "could not tell the CRM a flag cleared; trying again",
            extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(exc)},
        )
        ended = False
    if not ended:
        # Judged again in a minute (not at once: the step holding it needs that long at most).
        due = {run.account_id: now.timestamp() + CLEAR_RETRY_SECONDS}
        waiting.wait_until(context.redis, due, context.config.evaluation.settle_seconds)
    return ended


def run_due_steps(
    context: ExecutionContext,
    playbooks: Sequence[Playbook],
    now: datetime,
    on_refused: Refused | None = None,
) -> int:
    """Every minute: release held tasks the caps now allow, then run every step that is due,
    a page at a time; a step that fails waits for the next minute without holding up the rest."""
    release_held_tasks(context, now, playbooks)
    by_name = {playbook.name: playbook for playbook in playbooks}
    due = stored_runs.due_runs(context.redis, now.date(), DUE_MOST)
    total = 0
    for start in range(0, len(due), DUE_PAGE):
        page = due[start : start + DUE_PAGE]
        ids = sorted({account_id for account_id, _ in page})
        stored = runs_of(context, ids)
        accounts = context.crm.find_accounts(ids)
        judged = assessments(context, ids)
        items = []
        for account_id, slot in page:
            run = stored[account_id].get(slot)
            if (
                run is None
                or not run.active
                or run.playbook not in by_name
                or account_id not in accounts
            ):
                stored_runs.forget_due(context.redis, account_id, slot)
            elif run.due_on is not None and run.due_on > now.date():
                stored_runs.schedule(context.redis, account_id, slot, run.due_on)  # left early
            else:
                items.append(
                    (run, by_name[run.playbook], accounts[account_id], judged.get(account_id))
                )
        total += run_steps(context, items, now, on_refused)
    return total


def run_steps(
    context: ExecutionContext,
    items: Sequence[tuple[Run, Playbook, CrmAccount, RiskAssessment | None]],
    now: datetime,
    on_refused: Refused | None = None,
    judged_now: bool = False,
) -> int:
    """Run each run's next step (claimed, so once), all their tasks and notes in batches; save
    each run whose actions all went through.

    A run whose action failed in a way a retry may mend keeps its step due: the next minute
    tries again, and what was done already is not done twice. A refusal (4xx) no retry mends
    costs the others nothing: that step waits, unscheduled, and `on_refused` hands it to a job
    of its own, which fails into the failed registry with the CRM's words for `integration
    failed` / `retry` (without `on_refused`, the refusal is raised).

    `judged_now`: the assessments given are the ones an evaluation just made (not kept yet);
    else the kept ones are read again once the steps are claimed."""
    planned = _claimed_plans(context, items, now, judged_now)
    outcomes = run_actions(context, [action for _, plan in planned for action in plan.actions], now)
    ran = 0
    trail: list[Event] = []  # each step and its actions, for the audit trail
    try:
        for run, plan in planned:
            if _settle(context, run, plan, outcomes, now, on_refused, trail):
                ran += 1
    finally:  # a refusal raised still leaves the steps settled before it in the trail
        remember_created(context, made_tasks(trail), now)
        history.record(context.redis, trail, context.config.history)
    return ran


def _claimed_plans(
    context: ExecutionContext,
    items: Sequence[tuple[Run, Playbook, CrmAccount, RiskAssessment | None]],
    now: datetime,
    judged_now: bool,
) -> list[tuple[Run, StepPlan]]:
    """Claim each run's step, read the run and its judgement again (the evaluation may have
    moved them meanwhile), and plan the step; one run's bad template costs only that run."""
    claimed = [
        (run, playbook, account, assessment)
        for run, playbook, account, assessment in items
        if stored_runs.claim_step(context.redis, run.run_id, run.next_step)
    ]
    ids = sorted({run.account_id for run, *_ in claimed})
    fresh, open_ids = runs_of(context, ids), open_tasks(context, ids)
    judged = {} if judged_now else assessments(context, ids)
    planned = []
    for claimed_run, playbook, account, given in claimed:
        run = fresh[claimed_run.account_id].get(claimed_run.slot)
        if run is None or run.version != claimed_run.version or not run.active:
            stored_runs.release_step(context.redis, claimed_run.run_id, claimed_run.next_step)
            continue
        assessment = given if judged_now else judged.get(run.account_id)
        try:
            plan = _plan(context, run, playbook, account, assessment, open_ids, now)
        except (CrmRetriableError, CrmFatalError) as exc:  # a manager lookup, say
            logger.warning(
                "could not plan a playbook step; next minute",
                extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(exc)},
            )
            stored_runs.release_step(context.redis, run.run_id, run.next_step)
            continue
        if plan is not None:
            planned.append((run, plan))
    return planned


def _plan(
    context: ExecutionContext,
    run: Run,
    playbook: Playbook,
    account: CrmAccount,
    assessment: RiskAssessment | None,
    open_ids: Mapping[str, set[str]],
    now: datetime,
) -> StepPlan | None:
    """The step's plan, or None when the run is finished here instead (asked to complete, its
    playbook shorter now than when it started, a template that fails, a task still held)."""
    if stored_runs.completion_asked(context.redis, run.account_id, run.run_id):
        _finish(context, run, run.ended(RunStatus.COMPLETED, now, "the rep completed the task"))
        return None
    if run.next_step >= len(playbook.spec.steps):  # the admin removed steps since it started
        _finish(context, run, run.ended(RunStatus.DONE, now, "its playbook has no more steps"))
        return None
    previous_ids = _previous_tasks(run, playbook)
    held = [task.removeprefix(HELD_PREFIX) for task in previous_ids if task.startswith(HELD_PREFIX)]
    if any(caps.is_held(context.redis, member) for member in held):
        # The previous task is still held by a cap: the rep has not had it yet, so nothing
        # escalates about it; this step waits a working day.
        later = calendar(context).add_working_days(now.date(), 1)
        _finish(context, run, replace(run, due_on=later))
        return None
    inputs = _inputs(context, run, playbook, account, open_ids.get(run.account_id, set()), now)
    try:
        return plan_step(playbook, run, assessment, account, inputs)
    except (TemplateError, TypeError, ValueError) as exc:
        logger.error(
            "a playbook template failed; the run stops here",
            extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(exc)},
        )
        _finish(context, run, run.ended(RunStatus.DONE, now, f"template failed: {exc}"[:200]))
        return None


def _finish(context: ExecutionContext, run: Run, moved: Run) -> None:
    """Save the run as moved without a step (waiting, or ended: then the trail says why)."""
    saved = stored_runs.save_run(
        context.redis, run.account_id, run.slot, moved.to_json(), run.version, moved.due_on
    )
    stored_runs.release_step(context.redis, run.run_id, run.next_step)
    if saved and moved.status is not RunStatus.ACTIVE:
        # Rare (a completion asked for, a template failing): its own round trip.
        last = moved.steps[-1]
        ended = ended_event(moved, datetime.fromisoformat(last.at), last.outcome)
        history.record(context.redis, [ended], context.config.history)


def _settle(
    context: ExecutionContext,
    run: Run,
    plan: StepPlan,
    outcomes: Outcomes,
    now: datetime,
    on_refused: Refused | None,
    trail: list[Event] | None = None,
) -> bool:
    """Save the run once its step's actions all went through; True when it moved on. The
    step, its actions (with the CRM records they made) and the run's end, if it ended, go
    to `trail`."""
    trail = [] if trail is None else trail
    failed = [
        outcomes.failed[a.idempotency_key]
        for a in plan.actions
        if a.idempotency_key in outcomes.failed
    ]
    if failed:
        stored_runs.release_step(context.redis, run.run_id, run.next_step)
        if not any(isinstance(error, CrmRetriableError) for error in failed):
            why = f"refused by the CRM: {failed[0]}"[:300]
            trail.append(step_event(run, plan.step.name, why, now))
            _refused(context, run, failed[0], on_refused)
        return False
    # A task held by a cap is the run's too, by its held name, until it goes out.
    task_ids = tuple(
        held_name(a)
        if outcomes.done[a.idempotency_key] == HELD
        else outcomes.done[a.idempotency_key]
        for a in plan.actions
        if isinstance(a, CreateTask) and a.idempotency_key in outcomes.done
    )
    # A step skipped ends the run as done (plan.next_due is None); if its trigger cleared, the
    # next evaluation ends it as cleared and tells the rep (playbooks/exits.py).
    moved = run.after_step(plan.step.name, now, plan.skipped or "ran", task_ids, plan.next_due)
    if stored_runs.save_run(
        context.redis, run.account_id, run.slot, moved.to_json(), run.version, moved.due_on
    ):
        trail += settled_events(context, run, plan, outcomes.done, now)
        if not moved.active:
            why = f"{plan.step.name} skipped: {plan.skipped}" if plan.skipped else "every step ran"
            trail.append(ended_event(moved, now, why))
    return True


def _refused(
    context: ExecutionContext, run: Run, error: Exception, on_refused: Refused | None
) -> None:
    logger.error(
        "CRM refused a playbook action; the step gets a job of its own",
        extra={"account_id": run.account_id, "playbook": run.playbook, "error": str(error)},
    )
    if on_refused is None:
        raise error
    stored_runs.save_run(context.redis, run.account_id, run.slot, run.to_json(), run.version, None)
    on_refused(run)


def _previous_tasks(run: Run, playbook: Playbook) -> tuple[str, ...]:
    """The tasks the step before the run's next one made (held ones by their held name)."""
    if not run.next_step:
        return ()
    return run.tasks.get(playbook.spec.steps[run.next_step - 1].name, ())


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
        routes["manager"] = manager_of(context, account.owner_id)
    previous_ids = _previous_tasks(run, playbook)
    return StepInputs(
        today=now.date(),
        calendar=calendar(context),
        routes=routes,
        fallback_owner=context.config.owners.fallback_owner,
        previous_task_open=any(task in open_ids for task in previous_ids),
        record_url=context.crm.record_url(account.crm_id),
        channels=frozenset(
            name for name in ("slack", "email") if getattr(context.config.channels, name)
        ),
    )


def run_one_step(
    context: ExecutionContext,
    account_id: str,
    slot: str,
    playbooks: Sequence[Playbook],
    now: datetime,
) -> str:
    """One run's waiting step on its own (after a refusal): a refusal again is raised."""
    run = runs_of(context, [account_id])[account_id].get(slot)
    by_name = {playbook.name: playbook for playbook in playbooks}
    if run is None or not run.active or run.playbook not in by_name:
        return "no active run"
    account = context.crm.find_accounts([account_id]).get(account_id)
    if account is None:
        return "no such account in the CRM"
    assessment = assessments(context, [account_id]).get(account_id)
    ran = run_steps(context, [(run, by_name[run.playbook], account, assessment)], now)
    return f"{run.playbook}: step {run.next_step + 1} {'ran' if ran else 'is claimed elsewhere'}"


def report(context: ExecutionContext) -> Mapping[str, int]:
    """Figures for `integration report`: steps waiting and tasks held by a cap."""
    return {
        "steps_waiting": stored_runs.count_due(context.redis),
        "tasks_held": caps.held_count(context.redis),
    }
