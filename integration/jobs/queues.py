"""RQ queues and the enqueue calls the web edge makes (by function path, so it imports no jobs)."""

from __future__ import annotations

import hashlib
from collections.abc import Mapping
from datetime import UTC, datetime
from typing import Any

from redis import Redis
from rq import Queue, Retry
from rq.exceptions import DuplicateJobError
from rq.job import Job

from integration.signals.crm_changes import CrmChange
from integration.signals.events import JobChanged

SIGNALS = "signals"
EVALUATE = "evaluate"
QUEUE_NAMES = (SIGNALS, EVALUATE)
SIGNAL_JOB_KEEP_SECONDS = 7 * 24 * 3600
FAILED_JOB_KEEP_SECONDS = 30 * 24 * 3600
# A CRM outage is waited out a minute at a time for a day (then the job is in `integration
# failed`): once the CRM answers again, what is owed lands within two minutes. A wait the CRM
# asks for replaces these (jobs/evaluate.py crm_job), and while a pause holds, a try costs no
# CRM call (adapters/waits.py).
CRM_RETRY_INTERVALS_SECONDS = [10, 30, 60]
CRM_RETRY = Retry(max=24 * 60, interval=CRM_RETRY_INTERVALS_SECONDS)
# The jobs, by module path: the web edge queues them without importing the workers' code.
EVALUATION_JOBS = "integration.jobs.evaluate"
CRM_CHANGE_JOBS = "integration.jobs.crm_changes"
STEP_JOBS = "integration.jobs.steps"


def queue(name: str, connection: Redis) -> Queue:
    return Queue(name, connection=connection)


def enqueue_job_change(redis: Redis, change: JobChanged) -> bool:
    """Queue one people signal; False when the same (source, event_id) is already queued or done."""
    return _enqueue_once(
        redis,
        f"{EVALUATION_JOBS}.process_job_change",
        change.to_json(),
        f"people-{change.dedupe_id}",
    )


def enqueue_crm_change(redis: Redis, change: CrmChange) -> bool:
    """Queue one CRM change; False when the same event was queued or handled already."""
    return _enqueue_once(
        redis,
        f"{CRM_CHANGE_JOBS}.process_crm_change",
        change.to_json(),
        f"crm-{change.dedupe_id}",
    )


def enqueue_record_snapshot(
    redis: Redis, crm: str, sobject_type: str, fields: dict[str, str], notification_id: str
) -> bool:
    """Queue one record notification (Salesforce outbound message); False if seen before."""
    digest = hashlib.sha256(f"{crm}\x00{notification_id}".encode()).hexdigest()[:40]
    payload = {
        "crm": crm,
        "sobject_type": sobject_type,
        "fields": fields,
        "notification_id": notification_id,
    }
    return _enqueue_once(
        redis, f"{CRM_CHANGE_JOBS}.process_record_snapshot", payload, f"record-{digest}"
    )


def _enqueue_once(redis: Redis, function: str, payload: Mapping[str, object], job_id: str) -> bool:
    """The job id is the dedupe key: kept for a week after the job ends, it drops re-deliveries."""
    try:
        queue(SIGNALS, redis).enqueue(
            function,
            payload,
            job_id=job_id,
            unique=True,
            result_ttl=SIGNAL_JOB_KEEP_SECONDS,
            failure_ttl=FAILED_JOB_KEEP_SECONDS,
            retry=CRM_RETRY,
        )
    except DuplicateJobError:
        return False
    return True


def enqueue_playbook_step(redis: Redis, account_id: str, slot: str, step: int) -> None:
    """A job for one refused playbook step; while one waits or sits in the failed registry,
    no second one."""
    digest = hashlib.sha256(f"{account_id}\x00{slot}\x00{step}".encode()).hexdigest()[:40]
    try:
        queue(EVALUATE, redis).enqueue(
            f"{STEP_JOBS}.run_playbook_step",
            account_id,
            slot,
            job_id=f"step-{digest}",
            unique=True,
            result_ttl=0,
            failure_ttl=FAILED_JOB_KEEP_SECONDS,
            retry=CRM_RETRY,
        )
    except DuplicateJobError:
        return


def enqueue_evaluation_rest(redis: Redis, run_id: str, run_began: float) -> None:
    """The rest of a dirty-account evaluation that gave way after its time budget, queued at
    once: behind the people signals and CRM changes waiting (their queue comes first), so a
    backlog of usage never holds a signal's task back by more than one budget. One per run."""
    try:
        queue(EVALUATE, redis).enqueue(
            f"{EVALUATION_JOBS}.evaluate_dirty_accounts",
            run_began,
            job_id=f"evaluate-rest-{hashlib.sha256(run_id.encode()).hexdigest()[:32]}",
            unique=True,
            result_ttl=0,
            failure_ttl=FAILED_JOB_KEEP_SECONDS,
            retry=CRM_RETRY,
        )
    except DuplicateJobError:
        return


def evaluation_job_id(now: datetime, interval_seconds: int) -> str:
    """One dirty-account evaluation job per interval at most: the id is the dedupe key
    (unique=True) and the job is kept until its interval is over, so a delivery meanwhile
    queues nothing; a job that failed for good blocks only the rest of its interval."""
    return f"evaluate-dirty-{int(now.timestamp()) // max(1, interval_seconds)}"


def evaluation_job_key(now: datetime, interval_seconds: int) -> str:
    return str(Job.key_for(evaluation_job_id(now, interval_seconds)))


def next_interval(now: datetime, interval_seconds: int) -> datetime:
    """When the interval after the one `now` falls in begins."""
    size = max(1, interval_seconds)
    return datetime.fromtimestamp((int(now.timestamp()) // size + 1) * size, UTC)


def next_evaluation_job_key(now: datetime, interval_seconds: int) -> str:
    return evaluation_job_key(next_interval(now, interval_seconds), interval_seconds)


def enqueue_dirty_evaluation(
    redis: Redis, now: datetime, interval_seconds: int, at: datetime | None = None
) -> None:
    """Queue the job that evaluates every settled account with new usage, many at a time; with
    `at`, for then (RQ's scheduler, which the worker runs, queues it when due)."""
    when = at or now
    kept = max(1, interval_seconds)
    kept_seconds = kept - int(when.timestamp()) % kept if interval_seconds else 0
    try:
        queued = queue(EVALUATE, redis)
        options: dict[str, Any] = {
            "job_id": evaluation_job_id(when, interval_seconds),
            "unique": True,
            "result_ttl": kept_seconds,
            "failure_ttl": FAILED_JOB_KEEP_SECONDS,
            "retry": CRM_RETRY,
        }
        function = f"{EVALUATION_JOBS}.evaluate_dirty_accounts"
        if at is None:
            queued.enqueue(function, **options)
        else:
            queued.enqueue_at(at, function, **options)
    except DuplicateJobError:
        return
