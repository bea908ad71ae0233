"""A plain-text report of flags and tasks in the sandbox CRM, for the demo and for admins."""

from __future__ import annotations

import json
from datetime import date, datetime

from adapters.sandbox.adapter import SandboxCrm
from integration.jobs.context import Context
from integration.risk.assess import assessment_from_json
from integration.store import keys
from integration.store.cluster import get_many
from playbooks.waterfall import report as playbook_figures


def render_report(
    context: Context,
    since: date | None = None,
    *,
    as_json: bool = False,
    now: datetime | None = None,
) -> str:
    crm = context.crm
    if not isinstance(crm, SandboxCrm):
        return f"{_playbook_line(context)}\n(tasks and flags are in your CRM: open it to see them)"
    # The known accounts, not a SCAN of the keyspace (every node of a cluster, all keys).
    known = sorted(keys.text(a) for a in context.redis.sscan_iter(keys.known_accounts()))
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
    figures = playbook_figures(context)
    return (
        f"playbooks: {figures['steps_waiting']} step(s) waiting to run, "
        f"{figures['tasks_held']} task(s) held by a cap until a later working day"
    )
