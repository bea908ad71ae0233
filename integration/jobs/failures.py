"""Jobs that failed for good, as an admin sees them: what, when, and the CRM's own words."""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import dataclass
from datetime import UTC, datetime

from redis import Redis
from rq import Queue
from rq.job import Job
from rq.registry import FailedJobRegistry

from integration.jobs.queues import QUEUE_NAMES

_NEVER = datetime.min.replace(tzinfo=UTC)


@dataclass(frozen=True, slots=True)
class FailedJob:
    queue: str
    job_id: str
    function: str
    failed_at: datetime | None
    error: str


def list_failed(redis: Redis) -> list[FailedJob]:
    failed = []
    for name in QUEUE_NAMES:
        queue = Queue(name, connection=redis)
        job_ids = queue.failed_job_registry.get_job_ids()
        for job in Job.fetch_many(job_ids, connection=redis):
            if job is None:  # expired between the two reads
                continue
            result = job.latest_result()
            lines = (result.exc_string or "").strip().splitlines() if result else []
            failed.append(
                FailedJob(
                    name,
                    job.id,
                    job.func_name or "?",
                    job.ended_at,
                    lines[-1] if lines else "(no error recorded)",
                )
            )
    return sorted(failed, key=lambda job: job.failed_at or _NEVER, reverse=True)


@dataclass(frozen=True, slots=True)
class Retried:
    requeued: int
    unknown: list[str]  # ids asked for that no failed registry holds, in the order given


def retry_failed(redis: Redis, job_ids: Iterable[str] | None = None) -> Retried:
    """Put failed jobs back on their queues (all of them when no ids are given), and say which
    of the ids asked for were not there, so a mistyped id is not taken for a retried job."""
    asked = list(dict.fromkeys(job_ids or ()))
    wanted = set(asked) if job_ids is not None else None
    requeued: set[str] = set()
    for name in QUEUE_NAMES:
        registry = FailedJobRegistry(name, connection=redis)
        for job_id in registry.get_job_ids():
            if wanted is None or job_id in wanted:
                registry.requeue(job_id)
                requeued.add(job_id)
    return Retried(len(requeued), [job_id for job_id in asked if job_id not in requeued])
