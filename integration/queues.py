"""RQ queues and the enqueue calls the web edge makes (by function path, so it imports no jobs)."""

from __future__ import annotations

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError

from integration.signals import JobChanged

SIGNALS = "signals"
EVALUATE = "evaluate"
QUEUE_NAMES = (SIGNALS, EVALUATE)
# A job-change job's id is its dedupe key; keeping the finished job this long drops re-deliveries.
PEOPLE_JOB_KEEP_SECONDS = 7 * 24 * 3600
FAILED_JOB_KEEP_SECONDS = 30 * 24 * 3600
CRM_RETRY = Retry(max=5, interval=[10, 30, 120, 600, 1800])


def queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection)


def enqueue_job_change(redis: Redis, change: JobChanged) -> bool:
    """Queue one people signal; False when the same (source, event_id) is already queued or done."""
    try:
        queue(SIGNALS, redis).enqueue(
            "integration.jobs.process_job_change",
            change.to_json(),
            job_id=f"people-{change.dedupe_id}",
            unique=True,
            result_ttl=PEOPLE_JOB_KEEP_SECONDS,
            failure_ttl=FAILED_JOB_KEEP_SECONDS,
            retry=CRM_RETRY,
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_dirty_evaluation(redis: Redis) -> None:
    """Queue a job that evaluates every account with new usage, many at a time."""
    queue(EVALUATE, redis).enqueue(
        "integration.jobs.evaluate_dirty_accounts",
        failure_ttl=FAILED_JOB_KEEP_SECONDS,
        retry=CRM_RETRY,
    )
