"""The RQ job that runs playbook steps when they are due (every minute, by `rq cron`)."""

from __future__ import annotations

from datetime import UTC, datetime

from integration.jobs.evaluate import crm_job, current_context, step_refused
from playbooks.waterfall import run_due_steps, run_one_step


@crm_job
def run_playbook_steps() -> int:
    """Release tasks a cap held back, then run every playbook step that is due; a step runs
    once however often this job runs (playbooks/waterfall.py)."""
    context = current_context()
    return run_due_steps(context, context.playbooks, datetime.now(UTC), step_refused(context))


@crm_job
def run_playbook_step(account_id: str, slot: str) -> str:
    """A step the CRM refused, on its own: refused again, it fails into the failed registry
    with the CRM's words, and `integration retry` runs it once the cause is fixed."""
    context = current_context()
    return run_one_step(context, account_id, slot, context.playbooks, datetime.now(UTC))
