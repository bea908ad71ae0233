"""What moving the playbooks along would do, worked out without doing it: the twin of
playbooks/waterfall.py (and held.py, exits.py) for `integration plan`.

The same decisions in the same order: runs whose trigger cleared end first, then runs start
(the engine's runs_to_start: triggers, conditions, cooldown; a control-group run starts
tracked and takes no action), their first steps due today run at once, then the next minute
releases the tasks a cap held and runs every stored step that is due. Each step is planned by
the run's own planner (playbooks/planning.py plan_step), so subjects, bodies, owners and due
dates are the ones the run would create. Runs are changed in memory only.
"""

from __future__ import annotations

import json
from collections.abc import Collection, Sequence
from dataclasses import dataclass, field, replace
from datetime import date, datetime

from jinja2 import TemplateError

from adapters.costs import WritePath
from adapters.protocol import CrmAccount
from integration.risk.assess import RiskAssessment
from integration.store import caps, keys
from integration.store import runs as stored_runs
from playbooks.actions import CreateNote, CreateTask
from playbooks.control import ControlCount, samples
from playbooks.dry_actions import DryContext, Fate, Planned, cap_reached, run_action, run_actions
from playbooks.engine import (
    Playbook,
    runs_to_clear,
    runs_to_start,
    runs_to_treat,
    trigger_holds,
)
from playbooks.execution import held_task
from playbooks.exits import cleared_text
from playbooks.held import held_name
from playbooks.planning import StepPlan, plan_step
from playbooks.reads import HELD_PREFIX, assessments, calendar, open_tasks, runs_of
from playbooks.runs import Run, RunStatus
from playbooks.starts import control_counts

# The run's own helpers, so a step's inputs (routes, the manager, links) are the run's:
# private in playbooks/waterfall.py for now.
from playbooks.waterfall import DUE_MOST, DUE_PAGE, Judged, first_due
from playbooks.waterfall import _inputs as step_inputs
from playbooks.waterfall import _previous_tasks as previous_tasks

Item = tuple[Run, Playbook, CrmAccount, RiskAssessment | None]


@dataclass(frozen=True, slots=True)
class PlannedStep:
    """A step the run would take up: its actions and what becomes of each, or why it does
    not run now."""

    run: Run
    name: str
    number: int
    actions: tuple[Planned, ...]
    outcome: str  # "runs", "skipped: ...", "waits: ...", "ends: ..."
    next_due: date | None = None


@dataclass(frozen=True, slots=True)
class Cleared:
    """A run whose trigger cleared: its remaining steps are cancelled, its open tasks told."""

    run: Run
    exit: str  # note, complete, nothing (the playbook's exit.when_trigger_clears)
    open_tasks: tuple[str, ...]
    note: Planned | None = None
    waits: str | None = None  # why it is not ended by this run


@dataclass
class PlaybookDryRun:
    """The playbooks' part of the next run, for some accounts, worked out in memory."""

    dry: DryContext
    playbooks: Sequence[Playbook]
    account_ids: Collection[str]
    now: datetime
    started: list[Run] = field(default_factory=list)
    cleared: list[Cleared] = field(default_factory=list)
    steps: list[PlannedStep] = field(default_factory=list)
    released: list[Planned] = field(default_factory=list)
    runs: dict[str, dict[str, Run]] = field(default_factory=dict)  # as the run leaves them
    kept: dict[str, RiskAssessment] = field(default_factory=dict)  # the evaluation's
    touched: set[tuple[str, str]] = field(default_factory=set)

    def __post_init__(self) -> None:
        self.runs = runs_of(self.dry, sorted(self.account_ids))
        self.by_name = {playbook.name: playbook for playbook in self.playbooks}
        self.today = self.now.date()

    # -- after an evaluation (waterfall.advance) ---------------------------------------------

    def advance(self, judged: Sequence[Judged]) -> None:
        due_now: list[Item] = []
        counts = control_counts(self.dry, self.playbooks)
        for item in judged:
            runs = dict(self.runs.setdefault(item.after.account_id, {}))
            for run in runs_to_clear(runs.values(), item.after):
                if run.playbook in self.by_name:
                    self._clear(run, self.by_name[run.playbook], item.after)
            for control_run, _ in runs_to_treat(runs.values(), item.after, self.by_name):
                # starts.save_treated: a control run the config no longer holds out is treated
                playbook = self.by_name[control_run.playbook]
                due = first_due(self.dry, playbook, self.today)
                treated = replace(control_run, control=False, due_on=due)
                self._save(treated)
                if playbook.name in counts:
                    count = counts[playbook.name]
                    counts[playbook.name] = ControlCount(count.started, max(count.control - 1, 0))
                if due <= self.today:
                    due_now.append((treated, playbook, item.account, item.after))
            found = runs_to_start(
                item.before, item.after, item.account, self.playbooks, runs, self.today, counts
            )
            for run in found:
                playbook = self.by_name[run.playbook]
                first = playbook.spec.steps[0]
                due = (
                    calendar(self.dry).add_working_days(self.today, first.after_days)
                    if first.after_days
                    else self.today
                )
                if samples(playbook.spec):  # playbooks/starts.py save_started counts it
                    count = counts.get(playbook.name, ControlCount())
                    counts[playbook.name] = count.after(run.control)
                run = replace(run, due_on=None if run.control else due)
                self._save(run)
                self.started.append(run)
                if not run.control and due <= self.today:
                    due_now.append((replace(run, version=1), playbook, item.account, item.after))
        self._run_steps(due_now, judged_now=True)

    def keep(self, judged: Sequence[Judged]) -> None:
        """The assessments the evaluation keeps: what the due steps then read."""
        self.kept |= {item.after.account_id: item.after for item in judged}

    def _clear(self, run: Run, playbook: Playbook, after: RiskAssessment) -> None:
        """exits.end_run: tell the open tasks (a note, or complete them), end the run."""
        exit_ = playbook.spec.exit.when_trigger_clears
        if self.dry.redis.exists(keys.step_claim(run.run_id, run.next_step)):
            why = "a step of it is running now: it ends a minute later"
            self.cleared.append(Cleared(run, exit_, (), waits=why))
            return
        self.dry.spend.scope = (run.account_id, run.playbook)
        ids = open_tasks(self.dry, [run.account_id])[run.account_id]
        open_ids = tuple(run.open_task_ids(ids))
        note = None
        if open_ids and exit_ == "complete":
            self.dry.spend.write(
                WritePath.COMPLETE_TASK, [(run.account_id, run.playbook)] * len(open_ids)
            )
        elif open_ids and exit_ == "note":
            account = self.dry.crm.find_accounts([run.account_id]).get(run.account_id)
            if account is not None:
                text = cleared_text(playbook, run, after, len(open_ids), self.now)
                action = CreateNote(
                    f"{run.run_id}:exit:note",
                    run.playbook,
                    run.account_id,
                    account.crm_id,
                    account.owner_id,
                    text,
                    run_id=run.run_id,
                    step="exit",
                )
                note = run_action(self.dry, action, self.now)
        self._save(run.ended(RunStatus.CLEARED, self.now, "the flag cleared"))
        self.cleared.append(Cleared(run, exit_, open_ids, note))

    # -- the minute job (waterfall.run_due_steps) --------------------------------------------

    def run_due_steps(self) -> None:
        self._release_held()
        due = [
            entry
            for entry in stored_runs.due_runs(self.dry.redis, self.today, DUE_MOST)
            if entry[0] in self.account_ids and entry not in self.touched
        ]
        due += sorted(
            (account_id, slot)
            for account_id, slot in self.touched
            if (run := self.runs[account_id].get(slot)) is not None
            and run.active
            and run.due_on is not None
            and run.due_on <= self.today
        )
        for start in range(0, len(due), DUE_PAGE):
            self._due_page(due[start : start + DUE_PAGE])

    def _due_page(self, page: Sequence[tuple[str, str]]) -> None:
        ids = sorted({account_id for account_id, _ in page})
        self.dry.spend.scope = (None, None)
        accounts = self.dry.crm.find_accounts(ids)
        judged = {**assessments(self.dry, ids), **{a: self.kept[a] for a in ids if a in self.kept}}
        items: list[Item] = []
        for account_id, slot in page:
            run = self.runs.get(account_id, {}).get(slot)
            if run is None or not run.active or run.playbook not in self.by_name:
                continue
            if account_id not in accounts or (run.due_on and run.due_on > self.today):
                continue
            book = self.by_name[run.playbook]
            items.append((run, book, accounts[account_id], judged.get(account_id)))
        self._run_steps(items, judged_now=False)

    def _release_held(self) -> None:
        """held.release_held_tasks: on a working day, held tasks go out as the caps allow."""
        if not calendar(self.dry).is_working_day(self.today):
            return
        for member, _ in self.dry.redis.zrange(keys.tasks_held(), 0, -1, withscores=True):  # type: ignore[str-unpack]  # redis-py types the reply loosely
            raw = self.dry.redis.get(keys.held_task(keys.text(member)))
            if raw is None:
                continue
            stored = json.loads(raw)
            held_on = date.fromisoformat(stored["held_on"])
            task = held_task(stored["task"])
            if held_on >= self.today or task.account_id not in self.account_ids:
                continue
            self.dry.spend.scope = (task.account_id, task.playbook)
            if not self._still_wanted(task):
                self.released.append(Planned(task, Fate.NOTHING, "dropped: its flag cleared"))
                continue
            full = cap_reached(self.dry, task, self.now)
            if full:
                self.released.append(Planned(task, Fate.HELD, f"still {full}"))
                continue
            working = calendar(self.dry)
            days = working.working_days_between(held_on, task.due_date)
            due = working.add_working_days(self.today, days)
            planned = run_action(self.dry, replace(task, due_date=due), self.now)
            self.released.append(planned)
            if planned.fate is Fate.SENT:
                self._add_task_to_run(task, planned)

    def _still_wanted(self, task: CreateTask) -> bool:
        if not task.run_id:
            return True
        run = self._run_by_id(task.account_id, task.run_id)
        if run is None or run.status in (RunStatus.CLEARED, RunStatus.COMPLETED):
            return False
        kept = self.kept.get(task.account_id)
        if kept is None:
            kept = assessments(self.dry, [task.account_id]).get(task.account_id)
        return trigger_holds(run, kept)

    def _add_task_to_run(self, task: CreateTask, planned: Planned) -> None:
        run = self._run_by_id(task.account_id, task.run_id) if task.run_id else None
        if run is None:
            return
        ids = [t for t in run.tasks.get(task.step, ()) if t != held_name(task)]
        moved = replace(run, tasks={**run.tasks, task.step: (*ids, _task_id(planned))})
        book = self.by_name.get(run.playbook)
        steps = book.spec.steps if book else ()
        waits = run.active and 0 < run.next_step < len(steps)
        if waits and steps[run.next_step - 1].name == task.step:
            after = steps[run.next_step].after_days
            moved = replace(moved, due_on=calendar(self.dry).add_working_days(self.today, after))
        self._save(moved)

    # -- running steps (waterfall.run_steps) ---------------------------------------------------

    def _run_steps(self, items: Sequence[Item], judged_now: bool) -> None:
        ids = sorted({run.account_id for run, *_ in items})
        open_ids = open_tasks(self.dry, ids)
        kept = {} if judged_now else assessments(self.dry, ids) | self.kept
        planned: list[tuple[Run, StepPlan]] = []
        for run, playbook, account, given in items:
            if self.dry.redis.exists(keys.step_claim(run.run_id, run.next_step)):
                self._note(run, playbook, "waits: a worker is running this step now")
                continue
            assessment = given if judged_now else kept.get(run.account_id)
            plan = self._plan(run, playbook, account, assessment, open_ids.get(run.account_id))
            if plan is not None:
                planned.append((run, plan))
        actions = [action for _, plan in planned for action in plan.actions]
        outcomes = run_actions(self.dry, actions, self.now)
        for run, plan in planned:
            self._settle(run, plan, [outcomes[a.idempotency_key] for a in plan.actions])

    def _plan(
        self,
        run: Run,
        playbook: Playbook,
        account: CrmAccount,
        assessment: RiskAssessment | None,
        open_ids: set[str] | None,
    ) -> StepPlan | None:
        """waterfall._plan: the step's plan, or None when the run ends or waits instead."""
        now = self.now
        if stored_runs.completion_asked(self.dry.redis, run.account_id, run.run_id):
            why = "the rep completed one of its tasks"
            self._save(run.ended(RunStatus.COMPLETED, now, "the rep completed the task"))
            self._note(run, playbook, f"ends: {why}")
            return None
        if run.next_step >= len(playbook.spec.steps):
            self._save(run.ended(RunStatus.DONE, now, "its playbook has no more steps"))
            self._note(run, playbook, "ends: its playbook has no more steps")
            return None
        previous = previous_tasks(run, playbook)
        held = [t.removeprefix(HELD_PREFIX) for t in previous if t.startswith(HELD_PREFIX)]
        if any(caps.is_held(self.dry.redis, member) for member in held):
            later = calendar(self.dry).add_working_days(self.today, 1)
            self._save(replace(run, due_on=later))
            self._note(run, playbook, f"waits until {later}: its previous task is held by a cap")
            return None
        self.dry.spend.scope = (run.account_id, run.playbook)
        inputs = step_inputs(self.dry, run, playbook, account, open_ids or set(), now)
        try:
            return plan_step(playbook, run, assessment, account, inputs)
        except (TemplateError, TypeError, ValueError) as exc:
            self._save(run.ended(RunStatus.DONE, now, f"template failed: {exc}"[:200]))
            self._note(run, playbook, f"ends: a template failed ({exc})")
            return None

    def _settle(self, run: Run, plan: StepPlan, outcomes: Sequence[Planned]) -> None:
        number = run.next_step + 1
        fates = {p.fate for p in outcomes} | {p.instead.fate for p in outcomes if p.instead}
        if Fate.BUSY in fates or Fate.WAITS in fates:
            why = (
                "waits: the API budget holds it (bulk work); it stays due"
                if Fate.WAITS in fates
                else "waits: another worker is on one of its actions; the next minute tries again"
            )
            self.steps.append(PlannedStep(run, plan.step.name, number, tuple(outcomes), why))
            return
        task_ids = tuple(
            held_name(p.action) if p.fate is Fate.HELD else _task_id(p)
            for p in outcomes
            if isinstance(p.action, CreateTask)
        )
        moved = run.after_step(
            plan.step.name, self.now, plan.skipped or "ran", task_ids, plan.next_due
        )
        self._save(moved)
        outcome = f"skipped: {plan.skipped} (the run ends)" if plan.skipped else "runs"
        step = PlannedStep(run, plan.step.name, number, tuple(outcomes), outcome, plan.next_due)
        self.steps.append(step)

    # -- bookkeeping -----------------------------------------------------------------------------

    def _note(self, run: Run, playbook: Playbook, outcome: str) -> None:
        steps = playbook.spec.steps
        name = steps[run.next_step].name if run.next_step < len(steps) else "-"
        self.steps.append(PlannedStep(run, name, run.next_step + 1, (), outcome))

    def _save(self, run: Run) -> None:
        self.runs.setdefault(run.account_id, {})[run.slot] = run
        self.touched.add((run.account_id, run.slot))

    def _run_by_id(self, account_id: str, run_id: str) -> Run | None:
        runs = self.runs.get(account_id, {}).values()
        return next((run for run in runs if run.run_id == run_id), None)

    def waiting(self, account_id: str) -> list[Run]:
        """The account's runs still going once the run is over, by when their next step is due."""
        runs = [run for run in self.runs.get(account_id, {}).values() if run.active]
        return sorted(runs, key=lambda run: (run.due_on or date.max, run.playbook))


def _task_id(planned: Planned) -> str:
    """The CRM id a planned task would get: unknown until it is made."""
    if planned.fate is Fate.DONE:
        return planned.why.rsplit(": ", 1)[-1]
    return f"planned:{planned.action.idempotency_key}"


def by_account(items: Sequence[Run], account_id: str) -> list[Run]:
    return [run for run in items if run.account_id == account_id]


def account_steps(steps: Sequence[PlannedStep], account_id: str) -> list[PlannedStep]:
    return [step for step in steps if step.run.account_id == account_id]


def account_clears(cleared: Sequence[Cleared], account_id: str) -> list[Cleared]:
    return [item for item in cleared if item.run.account_id == account_id]


def account_released(released: Sequence[Planned], account_id: str) -> list[Planned]:
    return [item for item in released if item.action.account_id == account_id]
