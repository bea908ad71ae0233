"""What each playbook did and whether it worked, counted from the audit trail's events
(integration/store/history.py), for `integration report`.

Pure: the events come in (read at the edge, integration/cli/report.py), figures come out.

- Activity is counted by when it happened, within the period: runs started (treated and
  control), steps run, tasks completed and how long they took, tasks held back by caps.
- Outcomes are counted per account, from its first run of the playbook in the period: its
  reason cleared when, within `cleared_within_days` of that run's start, the run ended as
  cleared, its reason cleared, or (a risk-level trigger) an assessment fell below the level.
  Only accounts whose days have all passed have an outcome: one still inside them is left out
  of the shares, cleared or not (counting the early clears alone would flatter the playbook,
  counting the rest as not cleared would slight it); it is "too soon", with how many of those
  cleared so far.
- A control run switched to treated (run_treated: the admin lowered control_pct or set
  `control: never`) counts as treated, not control, in `fired_control` and the groups: its
  account got the playbook's action.
- Treated against control: the cleared share of each group, the difference and its 95%
  interval (playbooks/stats.py), only once each group has MIN_ACCOUNTS_PER_GROUP accounts
  with an outcome; below that the report says it cannot tell.
"""

from __future__ import annotations

from collections.abc import Iterable, Sequence
from dataclasses import dataclass, field
from datetime import datetime, timedelta
from statistics import median

from integration.risk.reasons import RiskLevel
from integration.store.history import Event
from playbooks.engine import LEVEL_KEY, RANK
from playbooks.stats import Difference, difference

# Fewer accounts with an outcome than this in either group: too few to tell.
MIN_ACCOUNTS_PER_GROUP = 10


@dataclass(frozen=True, slots=True)
class Group:
    """One arm of a playbook (treated or control), one account each."""

    accounts: int = 0  # accounts it started on in the period
    decided: int = 0  # ...whose days have passed: the outcome is known
    cleared: int = 0  # ...of those, whose reason cleared within the days
    cleared_so_far: int = 0  # ...of the others (too soon to tell), cleared already
    renewed: int = 0  # ...that renewed after the run started (where recorded)
    churned: int = 0

    @property
    def still_open(self) -> int:
        return self.accounts - self.decided

    @property
    def cleared_share(self) -> float | None:
        return self.cleared / self.decided if self.decided else None

    def plus(self, other: Group) -> Group:
        return Group(
            self.accounts + other.accounts,
            self.decided + other.decided,
            self.cleared + other.cleared,
            self.cleared_so_far + other.cleared_so_far,
            self.renewed + other.renewed,
            self.churned + other.churned,
        )


@dataclass(frozen=True, slots=True)
class PlaybookFigures:
    playbook: str
    fired: int  # runs started, treated and control
    fired_control: int
    steps_run: int
    tasks_completed: int
    median_completion_seconds: float | None
    tasks_held: int  # tasks a cap held back to a later working day
    treated: Group
    control: Group
    lift: Difference | None  # None: too few accounts to tell

    @property
    def everyone(self) -> Group:
        return self.treated.plus(self.control)


@dataclass
class _Tally:
    fired: int = 0
    fired_control: int = 0
    steps_run: int = 0
    held: int = 0
    completed: int = 0
    seconds: list[float] = field(default_factory=list)  # of the completions with a duration
    groups: dict[bool, Group] = field(default_factory=lambda: {False: Group(), True: Group()})


def playbook_figures(
    trails: Iterable[tuple[str, Sequence[Event]]],
    now: datetime,
    cleared_within_days: int,
    since: datetime | None = None,
    playbooks: Sequence[str] = (),
) -> list[PlaybookFigures]:
    """Figures per playbook (those named first, in order, then any other the events name)
    from each account's events, oldest first; events before `since` are not counted."""
    window = timedelta(days=cleared_within_days)
    tallies: dict[str, _Tally] = {name: _Tally() for name in playbooks}
    for _, trail in trails:
        events = [e for e in trail if since is None or e.at >= since]
        events.sort(key=lambda e: e.at)
        treated = {str(e.fields.get("run_id")) for e in events if e.kind == "run_treated"}
        _count_activity(tallies, events, treated)
        for start in _first_runs(events):
            tally = tallies.setdefault(str(start.fields["playbook"]), _Tally())
            control = _control(start, treated)
            tally.groups[control] = tally.groups[control].plus(_outcome(start, events, window, now))
    return [_figures(name, tally) for name, tally in tallies.items()]


def _control(start: Event, treated: set[str]) -> bool:
    """Whether the run started is a control run: held out, and not switched to treated."""
    return bool(start.fields.get("control")) and str(start.fields.get("run_id")) not in treated


def _count_activity(tallies: dict[str, _Tally], events: Sequence[Event], treated: set[str]) -> None:
    """Runs, steps, completions and holds. A run or a task the trail names twice (a retried
    job, a completion the CRM sent again) counts once; `treated`: the run_ids of control runs
    switched to treated."""
    seen: set[tuple[str, str]] = set()
    for item in events:
        name = item.fields.get("playbook")
        if not name or _repeated(item, seen):
            continue
        tally = tallies.setdefault(str(name), _Tally())
        if item.kind == "run_started":
            tally.fired += 1
            tally.fired_control += int(_control(item, treated))
        elif item.kind == "step" and item.fields.get("outcome") == "ran":
            tally.steps_run += 1
        elif item.kind == "task_completed":
            tally.completed += 1
            seconds = item.fields.get("seconds")
            if seconds is not None:  # a task made before created times were kept: no duration
                tally.seconds.append(float(seconds))
        elif item.kind == "action" and item.fields.get("held") and not item.fields.get("released"):
            tally.held += 1


def _repeated(item: Event, seen: set[tuple[str, str]]) -> bool:
    field_name = {"run_started": "run_id", "task_completed": "task_id"}.get(item.kind)
    value = item.fields.get(field_name) if field_name else None
    if not value:
        return False
    key = (item.kind, str(value))
    if key in seen:
        return True
    seen.add(key)
    return False


def _first_runs(events: Sequence[Event]) -> list[Event]:
    """The account's first run_started of each playbook."""
    first: dict[str, Event] = {}
    for item in events:
        if item.kind == "run_started":
            first.setdefault(str(item.fields.get("playbook")), item)
    return list(first.values())


def _outcome(start: Event, events: Sequence[Event], window: timedelta, now: datetime) -> Group:
    """One account's Group: whether its run's reason cleared in time, and its renewal."""
    deadline = start.at + window
    cleared = any(start.at <= e.at <= deadline and _clears(e, start) for e in events)
    renewal = next(
        (e.fields.get("outcome") for e in events if e.kind == "renewal" and e.at >= start.at),
        None,
    )
    known = now >= deadline
    return Group(
        accounts=1,
        decided=int(known),
        cleared=int(cleared and known),
        cleared_so_far=int(cleared and not known),
        renewed=int(renewal == "renewed"),
        churned=int(renewal == "churned"),
    )


def _clears(item: Event, start: Event) -> bool:
    """Whether `item` says the reason behind the run `start` cleared."""
    fields, trigger = item.fields, str(start.fields.get("trigger_key", ""))
    if item.kind == "run_ended":
        return fields.get("run_id") == start.fields.get("run_id") and (
            fields.get("status") == "cleared"
        )
    if item.kind == "reason_cleared":
        return bool(trigger) and fields.get("key") == trigger
    if item.kind == "assessment" and trigger.startswith(LEVEL_KEY):
        try:
            level = RiskLevel(str(fields.get("level")))
            wanted = RiskLevel(trigger[len(LEVEL_KEY) :])
        except ValueError:
            return False
        return RANK[level] < RANK[wanted]
    return False


def _figures(name: str, tally: _Tally) -> PlaybookFigures:
    treated, control = tally.groups[False], tally.groups[True]
    lift = None
    if min(treated.decided, control.decided) >= MIN_ACCOUNTS_PER_GROUP:
        lift = difference(treated.cleared, treated.decided, control.cleared, control.decided)
    return PlaybookFigures(
        playbook=name,
        fired=tally.fired,
        fired_control=tally.fired_control,
        steps_run=tally.steps_run,
        tasks_completed=tally.completed,
        median_completion_seconds=median(tally.seconds) if tally.seconds else None,
        tasks_held=tally.held,
        treated=treated,
        control=control,
        lift=lift,
    )
