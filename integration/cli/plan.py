"""`integration plan`: what the next run would do, per account, and what it costs in CRM API
calls against today's budget, without writing anything (integration/jobs/dry_run.py)."""

from __future__ import annotations

import json
from collections.abc import Sequence
from dataclasses import asdict
from datetime import date, datetime
from typing import Any

from adapters.budget import BudgetStatus, describe
from adapters.costs import CallKind
from integration.cli.errors import CliError
from integration.jobs.context import Context
from integration.jobs.dry_run import AccountPlan, Plan, dry_run
from integration.store import keys
from playbooks.actions import (
    Action,
    CreateNote,
    CreateTask,
    EnrollInSequence,
    NotifyOwner,
    SendEmail,
    SendSlack,
    UpdateField,
)
from playbooks.dry_actions import Fate, Planned
from playbooks.dry_run import Cleared, PlannedStep
from playbooks.runs import Run

KINDS: dict[type, str] = {
    CreateTask: "task",
    CreateNote: "note",
    EnrollInSequence: "enrollment",
    NotifyOwner: "notification",
    UpdateField: "field_update",
    SendSlack: "slack",
    SendEmail: "email",
}
CALL_NAMES = {
    CallKind.FIELD_UPDATES: "field batch update(s)",
    CallKind.TASK_CREATES: "task create(s)",
    CallKind.NOTE_CREATES: "note create(s)",
    CallKind.TASK_UPDATES: "task update(s)",
    CallKind.ENROLLMENTS: "enrollment(s)",
    CallKind.NOTIFICATIONS: "notification(s)",
    CallKind.READS: "read(s)",
}
FATES = {
    Fate.HELD: "",  # its `why` says which cap
    Fate.DONE: "already done",
    Fate.BUSY: "another worker is on it: a later minute tries again",
    Fate.WAITS: "waits for the API budget (bulk work)",
    Fate.NOTHING: "",
}


def render_plan(
    context: Context,
    account_ids: Sequence[str],
    playbook_name: str | None,
    *,
    as_json: bool,
    now: datetime,
) -> str:
    known = sorted(keys.text(a) for a in context.redis.smembers(keys.known_accounts()))
    for account_id in account_ids:
        if account_id not in known:
            msg = (
                f"unknown account {account_id!r}: no signal has named it yet "
                "(`integration evaluate` lists the accounts known)"
            )
            raise CliError(msg)
    running = sorted(book.name for book in context.playbooks)
    if playbook_name is not None and playbook_name not in running:
        msg = f"unknown playbook {playbook_name!r}: the playbooks on are {', '.join(running)}"
        raise CliError(msg)
    ids = sorted(set(account_ids)) if account_ids else known
    plan = dry_run(context, ids, playbook_name, now)
    return json.dumps(plan_json(plan), default=_json_value) if as_json else plan_text(plan)


# -- text ----------------------------------------------------------------------------------------


def plan_text(plan: Plan) -> str:
    only = f", only playbook {plan.playbook}" if plan.playbook else ""
    lines = [
        f"plan for {len(plan.accounts)} account(s) as of {plan.now:%Y-%m-%d %H:%M} UTC "
        f"(CRM: {plan.crm}{only}); nothing was written"
    ]
    for account in plan.accounts:
        lines += _account_text(account)
    if not plan.accounts:
        lines.append("nothing to do")
    return "\n".join([*lines, *_cost_text(plan)])


def _account_text(plan: AccountPlan) -> list[str]:
    if plan.account is None or plan.judged is None:
        return [f"{plan.account_id}: not in the CRM (the run lists it: `integration unmatched`)"]
    after, account = plan.judged.after, plan.account
    trend = f"{after.usage_trend_pct:+.0f}%" if after.usage_trend_pct is not None else "n/a"
    through = plan.judged_through.isoformat() if plan.judged_through else "?"
    lines = [
        f"{plan.account_id} ({account.name}, CRM id {account.crm_id}, owner "
        f"{account.owner_id or 'none'}): risk {after.level.value.upper()}, score {after.score}, "
        f"usage trend {trend}, judged through {through}"
    ]
    lines += [f"  reason: {reason.text} [{reason.code}]" for reason in after.reasons]
    if plan.receiving:
        lines.append("  history still arriving: judged again once quiet; no playbook moves yet")
    if plan.field_writes:
        wait = f" [waits: {plan.fields_wait}]" if plan.fields_wait else ""
        lines.append(f"  fields to write (they differ from what the CRM last took){wait}:")
        lines += [
            f"    {k} = {json.dumps(v, ensure_ascii=False)}" for k, v in plan.field_writes.items()
        ]
    lines += [_started_text(run) for run in plan.started]
    for cleared in plan.cleared:
        lines += _cleared_text(cleared)
    for step in plan.steps:
        lines += _step_text(step)
    for released in plan.released:
        lines += _planned_text(released, "  held task goes out: ")
    lines += [_waiting_text(run, step) for run, step in plan.waiting]
    return lines


def _started_text(run: Run) -> str:
    if run.control:
        return (
            f"  starts {run.playbook} (trigger {run.trigger_key}) in its control group: "
            "tracked, takes no action"
        )
    return f"  starts {run.playbook} (trigger {run.trigger_key}), first step due {run.due_on}"


def _cleared_text(cleared: Cleared) -> list[str]:
    head = f"  ends {cleared.run.playbook} (trigger {cleared.run.trigger_key}): its flag cleared"
    if cleared.waits:
        return [f"{head}; {cleared.waits}"]
    if not cleared.open_tasks or cleared.exit == "nothing":
        return [f"{head}; remaining steps cancelled"]
    if cleared.exit == "complete":
        return [f"{head}; its {len(cleared.open_tasks)} open task(s) are completed"]
    lines = [f"{head}; a note on its {len(cleared.open_tasks)} open task(s)"]
    return lines + (_planned_text(cleared.note, "    ") if cleared.note else [])


def _step_text(step: PlannedStep) -> list[str]:
    lines = [
        f"  {step.run.playbook} step {step.number} {step.name} ({step.run.trigger_key}): "
        f"{step.outcome}" + (f", next step due {step.next_due}" if step.next_due else "")
    ]
    for planned in step.actions:
        lines += _planned_text(planned, "    - ")
    return lines


def _planned_text(planned: Planned, lead: str) -> list[str]:
    action = planned.action
    fate = planned.why or FATES.get(planned.fate, "")
    suffix = f" [{fate}]" if fate and planned.fate is not Fate.SENT else ""
    first, body = _describe(action, planned.contact_id)
    lines = [f"{lead}{first}{suffix}"]
    indent = " " * len(lead) + "  "
    lines += [f"{indent}| {line}" for line in body]
    if planned.instead is not None:
        lines += _planned_text(planned.instead, f"{indent}instead: ")
    return lines


def _describe(action: Action, contact: str | None) -> tuple[str, list[str]]:
    tied = f", tied to contact {contact}" if contact else ""
    if isinstance(action, CreateTask):
        owner = action.owner_id or "nobody (set owners.fallback_owner)"
        return (
            f"task for {owner}, due {action.due_date}, {action.priority} {action.task_type}"
            f"{tied}: {action.subject}",
            action.body.splitlines(),
        )
    if isinstance(action, CreateNote):
        return f"note on the account{tied}", action.body.splitlines()
    if isinstance(action, EnrollInSequence):
        who = contact or action.contact_email or action.contact_role.replace("_", " ")
        return f"enroll {who} in sequence {action.sequence_id} as {action.owner_id}", []
    if isinstance(action, NotifyOwner):
        return f"notify {action.owner_id} in the CRM: {action.title}", action.body.splitlines()
    if isinstance(action, UpdateField):
        return f"field {action.crm_field} = {action.value!r}", []
    if isinstance(action, SendSlack):
        where = action.channel or f"a DM to {action.owner_id}"
        return f"Slack message to {where}", action.text.splitlines()
    where = action.to or f"{action.owner_id}'s address"
    return f"email to {where}: {action.subject}", action.body.splitlines()


def _waiting_text(run: Run, step: str) -> str:
    if run.control:
        return f"  {run.playbook} (control group): tracked until its flag clears, no step runs"
    due = f"due {run.due_on}" if run.due_on else "not scheduled"
    return f"  waiting: {run.playbook} step {run.next_step + 1} {step}, {due}"


def _cost_text(plan: Plan) -> list[str]:
    parts = ", ".join(f"{plan.calls[kind]} {CALL_NAMES[kind]}" for kind in CallKind)
    lines = [f"CRM API calls ({plan.crm}): {plan.total_calls} = {parts}"]
    if plan.urgent_calls:
        lines.append(
            f"  of which urgent playbooks' (they may spend the reserve): {plan.urgent_calls}"
        )
    if not plan.budgeted:
        return [*lines, f"budget: the {plan.crm} CRM has no API budget"]
    if plan.budget is None:
        return [
            *lines,
            "budget: today's limit is not known yet (no figures from the CRM so far; for a "
            "HubSpot OAuth app, which gets none, set budget.hubspot_daily_limit)",
        ]
    lines.append(f"budget: {describe(plan.budget)}")
    lines.append(f"  after this run: {_after(plan.budget, plan.total_calls):,} left")
    if plan.bulk_waits:
        lines.append(f"  bulk work waits: {plan.bulk_waits}")
    bulk = plan.total_calls - plan.urgent_calls
    if bulk > plan.budget.available(urgent=False):
        lines.append(
            f"  the bulk part ({bulk} calls) is more than the "
            f"{plan.budget.available(urgent=False)} bulk work may still spend: the rest waits"
        )
    return lines


def _after(status: BudgetStatus, calls: int) -> int:
    return max(0, status.remaining - calls)


# -- JSON ----------------------------------------------------------------------------------------


def plan_json(plan: Plan) -> dict[str, Any]:
    calls: dict[str, Any] = {kind.value: plan.calls[kind] for kind in CallKind}
    calls |= {"total": plan.total_calls, "urgent": plan.urgent_calls}
    budget = plan.budget.to_json() if plan.budget else None
    return {
        "as_of": plan.now.isoformat(),
        "crm": plan.crm,
        "playbook": plan.playbook,
        "accounts": [_account_json(account) for account in plan.accounts],
        "calls": calls,
        "budget": budget,
        "budgeted": plan.budgeted,
        "remaining_after": _after(plan.budget, plan.total_calls) if plan.budget else None,
        "bulk_waits": plan.bulk_waits,
    }


def _account_json(plan: AccountPlan) -> dict[str, Any]:
    account = plan.account
    data: dict[str, Any] = {"account_id": plan.account_id, "in_crm": account is not None}
    if account is None or plan.judged is None:
        return data
    after = plan.judged.after
    return data | {
        "name": account.name,
        "crm_id": account.crm_id,
        "owner_id": account.owner_id,
        "risk": {"level": after.level.value, "score": after.score},
        "usage_trend_pct": after.usage_trend_pct,
        "judged_through": plan.judged_through,
        "reasons": [
            {"code": r.code, "key": r.key, "severity": r.severity.value, "text": r.text}
            for r in after.reasons
        ],
        "receiving_history": plan.receiving,
        "field_writes": dict(plan.field_writes),
        "field_writes_wait": plan.fields_wait,
        "runs_started": [_run_json(run) for run in plan.started],
        "runs_ended": [
            {
                **_run_json(c.run),
                "exit": c.exit,
                "open_tasks": list(c.open_tasks),
                "note": _planned_json(c.note) if c.note else None,
                "waits": c.waits,
            }
            for c in plan.cleared
        ],
        "steps": [
            {
                **_run_json(step.run),
                "step": step.name,
                "number": step.number,
                "outcome": step.outcome,
                "next_due": step.next_due,
                "actions": [_planned_json(p) for p in step.actions],
            }
            for step in plan.steps
        ],
        "held_tasks_released": [_planned_json(p) for p in plan.released],
        "waiting": [
            _run_json(run) | {"next_step": run.next_step + 1, "step": step}
            for run, step in plan.waiting
        ],
    }


def _run_json(run: Run) -> dict[str, Any]:
    return {
        "playbook": run.playbook,
        "run_id": run.run_id,
        "trigger": run.trigger_key,
        "control": run.control,
        "due_on": run.due_on,
    }


def _planned_json(planned: Planned) -> dict[str, Any]:
    action = asdict(planned.action)
    action.pop("fallback", None)
    return {
        "kind": KINDS[type(planned.action)],
        "fate": planned.fate.value,
        "why": planned.why,
        "contact_id": planned.contact_id,
        **action,
        "instead": _planned_json(planned.instead) if planned.instead else None,
    }


def _json_value(value: object) -> str:
    if isinstance(value, date):
        return value.isoformat()
    msg = f"not JSON: {type(value).__name__}"
    raise TypeError(msg)
