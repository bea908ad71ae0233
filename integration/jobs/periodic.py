"""The jobs `rq cron` queues (jobs/cron.py), each with a Retry of its own.

rq 3.0's `cron.register` takes no `retry` (only job_timeout, result_ttl, ttl, failure_ttl, meta,
webhooks), so a periodic job that failed went straight to the failed registry, kept for a
year. Each job here gives itself a Retry on its first run (a retried run keeps what is left of
it); all of them are safe to run again, and cron.py keeps their failures for a day only.
"""

from __future__ import annotations

from rq import Retry, get_current_job

from integration.jobs.evaluate import evaluate_all_accounts, sweep_accounts
from integration.jobs.steps import run_playbook_steps

# The next run is due within a minute anyway: retry soon, a few times.
FREQUENT_RETRY = Retry(max=2, interval=[5, 20])
# The next run is tomorrow: keep trying for about two hours.
DAILY_RETRY = Retry(max=5, interval=[60, 300, 900, 1800, 3600])


def sweep() -> int:
    """Put back dead workers' accounts and evaluate waiting ones (evaluate.sweep_accounts)."""
    give_retry(FREQUENT_RETRY)
    return sweep_accounts()


def playbook_steps() -> int:
    """Run due playbook steps and release held tasks (steps.run_playbook_steps)."""
    give_retry(FREQUENT_RETRY)
    return run_playbook_steps()


def daily_evaluation() -> int:
    """Judge every known account (evaluate.evaluate_all_accounts)."""
    give_retry(DAILY_RETRY)
    return evaluate_all_accounts()


def give_retry(retry: Retry) -> None:
    """Arm RQ's retry on the running job, once: a retried run has its remaining count."""
    job = get_current_job()
    if job is not None and job.retries_left is None:
        job.retries_left = retry.max
        job.retry_intervals = retry.intervals
