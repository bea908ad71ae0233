"""Periodic jobs for `rq cron integration.jobs.cron` (RQ's own scheduler, no home-made one).

- Every few seconds: put back accounts a dead worker held (its batch's lease ran out), and
  evaluate accounts still waiting (their evaluation may not have been queued if Redis failed
  between storing usage and queueing). Frequent, so a dead worker's accounts wait seconds.
- Every minute: run the playbook steps that are due (escalations, follow-ups) and release tasks
  a cap held back.
- Every day: evaluate every known account, because an account whose usage stopped sends nothing,
  and a champion-left flag must clear when it ages out.

Each job retries itself (jobs/periodic.py); a failure is kept a day, not rq's year, since the
next run is due soon and repeats the work.
"""

from rq import cron

from integration.jobs.periodic import daily_evaluation, playbook_steps, sweep
from integration.jobs.queues import EVALUATE

SWEEP_INTERVAL_SECONDS = 10
STEPS_INTERVAL_SECONDS = 60
DAILY_EVALUATION_CRON = "15 5 * * *"  # 05:15 UTC, before the working day in EMEA and the Americas
PERIODIC_FAILURE_TTL_SECONDS = 24 * 3600

cron.register(
    sweep, EVALUATE, interval=SWEEP_INTERVAL_SECONDS, failure_ttl=PERIODIC_FAILURE_TTL_SECONDS
)
cron.register(
    playbook_steps,
    EVALUATE,
    interval=STEPS_INTERVAL_SECONDS,
    failure_ttl=PERIODIC_FAILURE_TTL_SECONDS,
)
cron.register(
    daily_evaluation,
    EVALUATE,
    cron=DAILY_EVALUATION_CRON,
    failure_ttl=PERIODIC_FAILURE_TTL_SECONDS,
)
