"""A lease on the accounts an evaluation run holds, renewed by a thread while its worker lives.

Why not RQ's own signals: with SimpleWorker the job runs in the worker's main process, so
nothing heartbeats while it runs; the worker key lives worker_ttl + 60 = 480 s and the job's
entry in the StartedJobRegistry job.timeout + 60 = 240 s, and the worker only moves abandoned
jobs to the failed registry when it cleans registries (every 10 minutes). A SIGKILLed worker's
batch would wait 4 to 14 minutes for RQ to know. A lease of LEASE_SECONDS, renewed every
RENEW_SECONDS by a daemon thread, lapses within LEASE_SECONDS of the process dying, and the
cron sweep (every few seconds) releases the accounts.

A live worker never loses its batch to a slow CRM: the thread renews while the main thread
waits. It loses it only when it cannot reach Redis for longer than the lease; then another
worker may evaluate those accounts too, which is harmless (every playbook effect has an
idempotency key; fields are written only when they differ), and this one's finish leaves the
other's hold alone.
"""

from __future__ import annotations

import logging
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from datetime import UTC, datetime, timedelta

from redis import Redis
from redis.exceptions import RedisError
from rq import get_current_job

from integration.store import waiting
from integration.store.waiting import Lease

logger = logging.getLogger(__name__)

LEASE_SECONDS = 15
RENEW_SECONDS = 3


@contextmanager
def held_batches(redis: Redis) -> Iterator[Lease]:
    """A lease for one run's batches (named after its RQ job), renewed until the run ends."""
    job = get_current_job()
    holder = f"{job.id if job else 'direct'}/{uuid.uuid4().hex[:12]}"
    lease = Lease(holder, timedelta(seconds=LEASE_SECONDS))
    stop = threading.Event()
    renewer = threading.Thread(
        target=_renew, args=(redis, lease, stop), name=f"lease {holder}", daemon=True
    )
    renewer.start()
    try:
        yield lease
    finally:
        stop.set()
        renewer.join()
        try:
            waiting.end_lease(redis, lease)
        except RedisError as exc:  # it runs out by itself; the accounts were finished already
            logger.warning("lease not ended", extra={"holder": holder, "error": str(exc)})


def _renew(redis: Redis, lease: Lease, stop: threading.Event) -> None:
    held = False
    while not stop.wait(RENEW_SECONDS):
        try:
            renewed = waiting.renew_lease(redis, lease, datetime.now(UTC))
        except RedisError as exc:
            logger.warning("lease not renewed", extra={"holder": lease.holder, "error": str(exc)})
            continue
        if held and not renewed:
            logger.warning(
                "lease ran out: another worker may evaluate this batch too",
                extra={"holder": lease.holder},
            )
        held = renewed
