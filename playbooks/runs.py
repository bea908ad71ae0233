"""A run: one playbook working through its steps for one account and one trigger.

Plain values, kept as JSON in Redis by integration/store/runs.py; the engine decides what a
run does next and playbooks/waterfall.py (the edge) moves it along.
"""

from __future__ import annotations

from collections.abc import Collection
from dataclasses import dataclass, field, replace
from datetime import date, datetime, timedelta
from enum import StrEnum
from typing import Any


class RunStatus(StrEnum):
    ACTIVE = "active"
    DONE = "done"  # every step ran, or a guard ended it
    CLEARED = "cleared"  # the trigger cleared
    COMPLETED = "completed"  # the rep completed its task; the escalations were cancelled


@dataclass(frozen=True, slots=True)
class StepRecord:
    name: str
    at: str  # ISO time the step ran (or was skipped)
    outcome: str  # "ran", or why it was skipped


@dataclass(frozen=True, slots=True)
class Run:
    run_id: str
    playbook: str
    account_id: str
    trigger_key: str  # the reason key, or "level:<level>"
    started_on: date
    status: RunStatus = RunStatus.ACTIVE
    next_step: int = 0
    due_on: date | None = None  # when next_step may run
    ended_on: date | None = None
    steps: tuple[StepRecord, ...] = ()
    # CRM task ids by the step that created them.
    tasks: dict[str, tuple[str, ...]] = field(default_factory=dict)
    version: int = 0  # bumped by each save (integration/store/runs.py compares it)
    # In the playbook's control group: tracked like the others (started, cleared) but no step
    # runs, so `integration report` can compare treated accounts with untouched ones.
    control: bool = False

    @property
    def slot(self) -> str:
        """One active run per playbook and trigger on an account."""
        return f"{self.playbook}|{self.trigger_key}"

    @property
    def active(self) -> bool:
        return self.status is RunStatus.ACTIVE

    @property
    def open_to_clear(self) -> bool:
        """Active, or done with its tasks perhaps still open: when its trigger clears, the
        rep is told (a run that ended otherwise has been told already)."""
        return self.status in (RunStatus.ACTIVE, RunStatus.DONE)

    def open_task_ids(self, open_ids: Collection[str]) -> list[str]:
        return [task for ids in self.tasks.values() for task in ids if task in open_ids]

    def after_step(
        self, name: str, now: datetime, outcome: str, task_ids: tuple[str, ...], due: date | None
    ) -> Run:
        """The run once step `name` ran (or was skipped): the next step due on `due`, or done."""
        tasks = {**self.tasks, name: task_ids} if task_ids else self.tasks
        record = StepRecord(name, now.isoformat(), outcome)
        ended = due is None
        return replace(
            self,
            next_step=self.next_step + 1,
            due_on=due,
            status=RunStatus.DONE if ended else self.status,
            ended_on=now.date() if ended else None,
            steps=(*self.steps, record),
            tasks=tasks,
        )

    def ended(self, status: RunStatus, now: datetime, why: str) -> Run:
        return replace(
            self,
            status=status,
            due_on=None,
            ended_on=now.date(),
            steps=(*self.steps, StepRecord("exit", now.isoformat(), why)),
        )

    def to_json(self) -> dict[str, Any]:
        return {
            "run_id": self.run_id,
            "playbook": self.playbook,
            "account_id": self.account_id,
            "trigger_key": self.trigger_key,
            "started_on": self.started_on.isoformat(),
            "status": self.status.value,
            "next_step": self.next_step,
            "due_on": self.due_on.isoformat() if self.due_on else None,
            "ended_on": self.ended_on.isoformat() if self.ended_on else None,
            "steps": [[s.name, s.at, s.outcome] for s in self.steps],
            "tasks": {name: list(ids) for name, ids in self.tasks.items()},
            "version": self.version,
            "control": self.control,
        }

    @classmethod
    def from_json(cls, raw: dict[str, Any]) -> Run:
        return cls(
            run_id=raw["run_id"],
            playbook=raw["playbook"],
            account_id=raw["account_id"],
            trigger_key=raw["trigger_key"],
            started_on=date.fromisoformat(raw["started_on"]),
            status=RunStatus(raw["status"]),
            next_step=int(raw["next_step"]),
            due_on=date.fromisoformat(raw["due_on"]) if raw.get("due_on") else None,
            ended_on=date.fromisoformat(raw["ended_on"]) if raw.get("ended_on") else None,
            steps=tuple(StepRecord(*step) for step in raw.get("steps", [])),
            tasks={name: tuple(ids) for name, ids in raw.get("tasks", {}).items()},
            version=int(raw.get("version", 0)),
            control=bool(raw.get("control", False)),
        )


@dataclass(frozen=True, slots=True)
class Calendar:
    """Working days: delays and due dates count these only."""

    weekdays: frozenset[int] = frozenset(range(5))
    holidays: frozenset[date] = frozenset()

    def is_working_day(self, day: date) -> bool:
        return day.weekday() in self.weekdays and day not in self.holidays

    def next_working_day(self, day: date) -> date:
        """`day` itself if it is a working day, else the first one after it."""
        while not self.is_working_day(day):
            day += timedelta(days=1)
        return day

    def working_days_between(self, start: date, end: date) -> int:
        """How many working days after `start` `end` is (0 when it is not later)."""
        count = 0
        while self.add_working_days(start, count) < end:
            count += 1
        return count

    def add_working_days(self, day: date, count: int) -> date:
        """`count` working days after `day` (0: the next working day from `day` on); from a
        Saturday, one working day is the Monday."""
        if count == 0:
            return self.next_working_day(day)
        for _ in range(count):
            day = self.next_working_day(day + timedelta(days=1))
        return day
