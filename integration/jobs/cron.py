"""Periodic jobs for `rq cron integration.jobs.cron` (RQ's own scheduler, no home-made one).

- Every minute: put back accounts a dead worker had taken, and evaluate accounts still waiting
  (their evaluation may not have been queued if Redis failed between storing usage and queueing).
- Every minute: run the playbook steps that are due (escalations, follow-ups) and release tasks
  a cap held back.
- Every day: evaluate every known account, because an account whose usage stopped sends nothing,
  and a champion-left flag must clear when it ages out.
"""

from rq import cron

from integration.jobs.evaluate import evaluate_all_accounts, sweep_accounts
from integration.jobs.queues import EVALUATE
from integration.jobs.steps import run_playbook_steps

SWEEP_INTERVAL_SECONDS = 60
DAILY_EVALUATION_CRON = "15 5 * * *"  # 05:15 UTC, before the working day in EMEA and the Americas

cron.register(sweep_accounts, EVALUATE, interval=SWEEP_INTERVAL_SECONDS)
cron.register(run_playbook_steps, EVALUATE, interval=SWEEP_INTERVAL_SECONDS)
cron.register(evaluate_all_accounts, EVALUATE, cron=DAILY_EVALUATION_CRON)
