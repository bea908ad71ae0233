"""`integration report`: per playbook, what it did and whether it worked (treated against
control), the API budget per CRM; then, for the sandbox CRM, each account's flags and tasks
(the demo's view).

The figures are counted from every known account's audit trail by playbooks/report.py (pure);
this module reads the trails and writes the text or the JSON.
"""

from __future__ import annotations

import json
import textwrap
from collections.abc import Iterator, Sequence
from datetime import UTC, date, datetime, time
from typing import Any

from adapters.budget import BudgetStatus, budget_status, describe
from adapters.sandbox.adapter import SandboxCrm
from integration.jobs.context import Context
from integration.risk.assess import assessment_from_json
from integration.store import history, keys
from integration.store.cluster import get_many
from playbooks.control import samples
from playbooks.report import MIN_ACCOUNTS_PER_GROUP, Group, PlaybookFigures, playbook_figures
from playbooks.waterfall import report as playbook_counts

# Trails read per round trip: a page of accounts at a time, never every stream at once.
PAGE_ACCOUNTS = 500
DIFFERENCE_METHOD = "Newcombe hybrid score (Wilson) interval, 95%"
HEADERS = (
    "playbook",
    "fired",
    "control",
    "steps run",
    "tasks done",
    "median to done",
    "cleared",
    "too soon",
    "held by caps",
)
GAP = "  "
WRAP_CHARS = 100


def render_report(
    context: Context,
    since: date | None = None,
    *,
    as_json: bool = False,
    now: datetime | None = None,
) -> str:
    now = now or datetime.now(UTC)
    known = sorted(keys.text(a) for a in context.redis.sscan_iter(keys.known_accounts()))
    start = datetime.combine(since, time(), UTC) if since else None
    figures = playbook_figures(
        _trails(context, known, start),
        now,
        context.config.outcomes.cleared_within_days,
        start,
        [playbook.name for playbook in context.playbooks],
    )
    budget = budget_status(context.queue_redis, context.crm.name, context.config, now)
    if as_json:
        return json.dumps(_as_json(context, figures, since, now, budget), indent=2)
    lines = [*_table(context, figures, since), "", *_lift_lines(context, figures)]
    lines.append(describe(budget) if budget else _no_budget(context))
    crm = context.crm
    if not isinstance(crm, SandboxCrm):
        lines += [_playbook_line(context), "(tasks and flags are in your CRM: open it to see them)"]
        return "\n".join(lines)
    return "\n".join([*lines, "", _accounts(context, crm, known)])


def _trails(
    context: Context, known: Sequence[str], since: datetime | None
) -> Iterator[tuple[str, list[history.Event]]]:
    for first in range(0, len(known), PAGE_ACCOUNTS):
        page = known[first : first + PAGE_ACCOUNTS]
        yield from history.read_many(
            context.redis, page, since, keep=context.config.history
        ).items()


# -- text ---------------------------------------------------------------------------------------


def _table(context: Context, figures: Sequence[PlaybookFigures], since: date | None) -> list[str]:
    days = context.config.outcomes.cleared_within_days
    period = f"since {since.isoformat()}" if since else "over the history kept"
    lines = [
        f"Playbooks {period}: runs started (fired), steps run, tasks completed and held by caps.",
        f"cleared: accounts whose reason cleared within {days} days of their run's start; "
        f"too soon: started less than {days} days ago, no outcome yet.",
        "",
    ]
    fired = [f for f in figures if f.fired or f.steps_run or f.tasks_completed or f.tasks_held]
    rows = [HEADERS, *(_cells(item) for item in fired)]
    widths = [max(len(row[column]) for row in rows) for column in range(len(HEADERS))]
    for row in rows:
        lines.append(
            GAP.join(
                cell.ljust(width) if column == 0 else cell.rjust(width)
                for column, (cell, width) in enumerate(zip(row, widths, strict=True))
            )
        )
    if not fired:
        lines.append("(no playbook has started a run in this period)")
    if _renewals_known(context, figures) and fired:
        lines.append("Renewals recorded after a run started:")
        lines += [
            f"  {item.playbook}: {item.everyone.renewed} renewed, {item.everyone.churned} churned"
            for item in fired
        ]
    idle = [f.playbook for f in figures if f not in fired]
    if idle:
        lines += textwrap.wrap(f"Not fired: {', '.join(idle)}", WRAP_CHARS, subsequent_indent="  ")
    return lines


def _cells(item: PlaybookFigures) -> tuple[str, ...]:
    everyone = item.everyone
    return (
        item.playbook,
        str(item.fired),
        str(item.fired_control) if item.fired_control else "-",
        str(item.steps_run),
        str(item.tasks_completed),
        _duration(item.median_completion_seconds),
        _share(everyone),
        _too_soon(everyone),
        str(item.tasks_held),
    )


def _lift_lines(context: Context, figures: Sequence[PlaybookFigures]) -> list[str]:
    """Treated against control, for each playbook that keeps a control group."""
    sampling = {p.name for p in context.playbooks if samples(p.spec)}
    compared = [f for f in figures if f.playbook in sampling or f.fired_control]
    if not compared:
        return [
            "Treated against control: no playbook keeps a control group; give one a "
            "control_pct (docs/playbooks.md) to see whether it works.",
            "",
        ]
    days = context.config.outcomes.cleared_within_days
    lines = [f"Treated against control (reason cleared within {days} days):"]
    for item in compared:
        groups = f"treated {_arm(item.treated)}, control {_arm(item.control)}"
        lines.append(f"  {item.playbook}: {groups}: {_verdict(item)}")
    return [*lines, ""]


def _verdict(item: PlaybookFigures) -> str:
    if item.lift is None:
        fewest = min(item.treated.decided, item.control.decided)
        return (
            f"too few accounts to tell ({fewest} with an outcome in the smaller group; "
            f"{MIN_ACCOUNTS_PER_GROUP} needed in each)"
        )
    lift = item.lift
    return (
        f"{_points(lift.estimate)} points, 95% interval {_points(lift.low)} to "
        f"{_points(lift.high)} ({_reading(lift.low, lift.high)})"
    )


def _reading(low: float, high: float) -> str:
    if low > 0:
        return "the playbook helps"
    if high < 0:
        return "treated accounts do worse"
    return "no clear difference yet"


def _points(fraction: float) -> str:
    return f"{fraction * 100:+.0f}"


def _share(group: Group) -> str:
    share = group.cleared_share
    if share is None:
        return "-"
    return f"{group.cleared} of {group.decided} ({share:.0%})"


def _arm(group: Group) -> str:
    """One group's cleared share, and the accounts it cannot count yet."""
    if not group.accounts:
        return "no accounts yet"
    waiting = f"{group.still_open} too soon, {group.cleared_so_far} of them cleared so far"
    if not group.decided:
        return f"no outcome yet ({waiting})"
    return _share(group) + (f" ({waiting})" if group.still_open else "")


def _too_soon(group: Group) -> str:
    if group.cleared_so_far:
        return f"{group.still_open} ({group.cleared_so_far} cleared so far)"
    return str(group.still_open)


def _duration(seconds: float | None) -> str:
    if seconds is None:
        return "-"
    if seconds < 3600:
        return f"{seconds / 60:.0f} min"
    if seconds < 2 * 86400:
        return f"{seconds / 3600:.1f} h"
    return f"{seconds / 86400:.1f} days"


def _renewals_known(context: Context, figures: Sequence[PlaybookFigures]) -> bool:
    return bool(context.config.account_facts.renewal_status) or any(
        f.everyone.renewed or f.everyone.churned for f in figures
    )


def _no_budget(context: Context) -> str:
    if isinstance(context.crm, SandboxCrm):
        return "API budget: none (the sandbox CRM has no API quota)"
    return (
        f"API budget: not known yet for {context.crm.name} (no daily figures from it so far; "
        "for a HubSpot OAuth app set budget.hubspot_daily_limit)"
    )


# -- JSON ---------------------------------------------------------------------------------------


def _as_json(
    context: Context,
    figures: Sequence[PlaybookFigures],
    since: date | None,
    now: datetime,
    budget: BudgetStatus | None,
) -> dict[str, Any]:
    counts = playbook_counts(context)
    shares = {p.name: p.spec.control_pct if samples(p.spec) else 0 for p in context.playbooks}
    return {
        "since": since.isoformat() if since else None,
        "now": now.isoformat(),
        "cleared_within_days": context.config.outcomes.cleared_within_days,
        "min_accounts_per_group": MIN_ACCOUNTS_PER_GROUP,
        "difference_method": DIFFERENCE_METHOD,
        "playbooks": [_playbook_json(item, shares.get(item.playbook)) for item in figures],
        "api_budget": budget.to_json() if budget else None,
        "api_budget_note": None if budget else _no_budget(context),
        "steps_waiting": counts["steps_waiting"],
        "tasks_held_now": counts["tasks_held"],
    }


def _playbook_json(item: PlaybookFigures, control_pct: float | None) -> dict[str, Any]:
    lift = item.lift
    return {
        "playbook": item.playbook,
        "control_pct": control_pct,  # None: a playbook no longer in the config
        "fired": item.fired,
        "fired_treated": item.fired - item.fired_control,
        "fired_control": item.fired_control,
        "steps_run": item.steps_run,
        "tasks_completed": item.tasks_completed,
        "median_completion_seconds": item.median_completion_seconds,
        "tasks_held": item.tasks_held,
        "all": _group_json(item.everyone),
        "treated": _group_json(item.treated),
        "control": _group_json(item.control),
        "difference": None
        if lift is None
        else {"estimate": lift.estimate, "low": lift.low, "high": lift.high},
        "verdict": _verdict(item) if item.control.accounts else None,
    }


def _group_json(group: Group) -> dict[str, Any]:
    return {
        "accounts": group.accounts,
        "with_outcome": group.decided,
        "cleared": group.cleared,
        "cleared_share": group.cleared_share,
        "too_soon": group.still_open,
        "too_soon_cleared_so_far": group.cleared_so_far,
        "renewed": group.renewed,
        "churned": group.churned,
    }


# -- the sandbox's accounts (the demo's view) ----------------------------------------------------


def _accounts(context: Context, crm: SandboxCrm, known: Sequence[str]) -> str:
    raws = get_many(context.redis, [keys.assessment(account_id) for account_id in known])
    assessments = [assessment_from_json(json.loads(raw)) for raw in raws if raw]
    accounts = crm.find_accounts([a.account_id for a in assessments])
    tasks = crm.tasks()
    notes = crm.notes()
    lines = []
    for item in assessments:
        account = accounts.get(item.account_id)
        name = account.name if account else item.account_id
        trend = (
            f", usage trend {item.usage_trend_pct:+.0f}%"
            if item.usage_trend_pct is not None
            else ""
        )
        lines.append(
            f"{name} ({item.account_id}): risk {item.level.value.upper()}, "
            f"score {item.score}{trend}"
        )
        lines.extend(f"  flag: {reason.text}" for reason in item.reasons)
        for task in (t for t in tasks if account and t.company_id == account.crm_id):
            lines.append(
                f"  task for {crm.owner_name(task.owner_id)}, due {task.due_date}, "
                f"{task.priority} priority: {task.subject}"
            )
            lines.extend(f"      {line}" for line in task.body.splitlines() if line.strip())
        for note in (n for n in notes if account and n.company_id == account.crm_id):
            lines.append(f"  note: {note.body.splitlines()[0]}")
        lines.append("")
    lines.append(f"{len(tasks)} task(s) and {len(notes)} note(s) in the sandbox CRM at {crm.path}")
    lines.append(_playbook_line(context))
    return "\n".join(lines)


def _playbook_line(context: Context) -> str:
    figures = playbook_counts(context)
    return (
        f"playbooks: {figures['steps_waiting']} step(s) waiting to run, "
        f"{figures['tasks_held']} task(s) held by a cap until a later working day"
    )
