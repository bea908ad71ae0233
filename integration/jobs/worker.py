"""The worker and cron processes' Redis client and RQ worker: they outlive a Redis restart.

rq 3.0 retries only its dequeue on a lost connection; anything else that fails against Redis (a
heartbeat, a job's bookkeeping, `rq cron`'s loop, the scheduler process) ends the process with
"unhandled exception, quitting". So the worker and cron processes use `PatientRedis`: redis-py
retries every command on a connection error or timeout, forever, with capped exponential backoff
(the web app keeps failing fast, to answer 503 so senders retry). `ResilientWorker` adds what a
restarted Redis that lost its data needs: it registers itself again, and it starts its loop
again should anything else end it. A supervisor still restarts the processes (README).

Procfile: `rq worker --connection-class integration.jobs.worker.PatientRedis
--worker-class integration.jobs.worker.ResilientWorker ...` and `rq cron --connection-class ...`.
"""

from __future__ import annotations

import contextlib
import ctypes
import logging
import os
import signal
import sys
import time
from collections.abc import Callable
from typing import Any, TypeVar

from redis import Redis
from redis.backoff import ExponentialBackoff
from redis.exceptions import ConnectionError as RedisConnectionError
from redis.exceptions import RedisError
from redis.exceptions import TimeoutError as RedisTimeoutError
from redis.retry import Retry
from rq import worker_registration
from rq.worker import SimpleWorker

from integration.jobs import stops

logger = logging.getLogger(__name__)
T = TypeVar("T")

# Reconnect attempts start 0.1 s apart and double up to this: a Redis back after a restart is
# seen within this long.
RECONNECT_CAP_SECONDS = 2.0
RECONNECT_BASE_SECONDS = 0.1
# A loop that ended for another reason starts again after this long, doubling up to the cap.
RESTART_BASE_SECONDS = 1.0
RESTART_CAP_SECONDS = 30.0
# On a requested shutdown, Redis gets this many more tries: a stop must not wait for it forever.
SHUTDOWN_RETRIES = 3


class _UntilStopped(Retry):
    """redis-py's Retry for ever, until this process is asked to stop (jobs/stops.py): the
    error is then raised at once, so a stop never waits for a Redis that is down."""

    def call_with_retry(
        self,
        do: Callable[[], T],
        fail: Callable[..., Any],
        is_retryable: Callable[[Exception], bool] | None = None,
        with_failure_count: bool = False,
    ) -> T:
        self._backoff.reset()  # type: ignore[no-untyped-call]  # redis-py leaves it unannotated
        failures = 0
        while True:
            try:
                return do()
            except self._supported_errors as error:
                if is_retryable and not is_retryable(error):
                    raise
                failures += 1
                if with_failure_count:
                    fail(error, failures)
                else:
                    fail(error)
                if stops.requested(self._backoff.compute(failures)):
                    raise


def patient_retry() -> Retry:
    """Retry every command on a lost connection or a timeout, backing off, until a stop."""
    stops.watch()
    backoff = ExponentialBackoff(cap=RECONNECT_CAP_SECONDS, base=RECONNECT_BASE_SECONDS)
    return _UntilStopped(backoff, -1, (RedisConnectionError, RedisTimeoutError))


class PatientRedis(Redis):
    """A Redis client that waits for its server instead of failing (for `--connection-class`)."""

    @classmethod
    def from_url(cls, url: str, **kwargs: Any) -> PatientRedis:  # noqa: ANN401 - redis-py's own signature
        kwargs.setdefault("retry", patient_retry())
        client = super().from_url(url, **kwargs)
        assert isinstance(client, PatientRedis)  # noqa: S101 - redis-py builds `cls`
        return client


# prctl(2): PR_SET_PDEATHSIG, the signal a child gets when the thread that forked it ends.
_PR_SET_PDEATHSIG = 1
_forks_watched = False


def _children_die_with_this_process() -> None:
    """The scheduler rq forks (`--with-scheduler`) outlives a worker killed with SIGKILL, an
    orphan holding the scheduler locks and writing to Redis for ever. On Linux the kernel is
    asked, in each child forked from here, to send it SIGTERM (a warm stop that lets the locks
    go) when this process dies; elsewhere nothing changes."""
    global _forks_watched  # noqa: PLW0603 - registered once a process
    if _forks_watched or not sys.platform.startswith("linux"):
        return
    _forks_watched = True

    def die_with_parent() -> None:
        with contextlib.suppress(OSError, AttributeError):
            ctypes.CDLL(None, use_errno=True).prctl(_PR_SET_PDEATHSIG, signal.SIGTERM)

    os.register_at_fork(after_in_child=die_with_parent)


class ResilientWorker(SimpleWorker):
    """A SimpleWorker (jobs in the worker's process) that keeps working across Redis restarts."""

    def work(self, burst: bool = False, *args: Any, **kwargs: Any) -> bool:  # noqa: ANN401 - rq's signature
        """Run rq's loop; when it ends with no stop asked for (and no burst or job/idle limit),
        log why and run it again after a capped exponential backoff."""
        _children_die_with_this_process()
        worked = False
        delay = RESTART_BASE_SECONDS
        limited = burst or kwargs.get("max_jobs") or kwargs.get("max_idle_time") or args
        while True:
            worked = super().work(burst, *args, **kwargs) or worked
            if limited or self._shutdown_requested_date is not None:
                return worked
            logger.error("worker loop ended unasked: starting it again", extra={"delay": delay})
            time.sleep(delay)
            delay = min(delay * 2, RESTART_CAP_SECONDS)

    def heartbeat(self, timeout: int | None = None, pipeline: Any = None) -> None:  # noqa: ANN401 - rq's signature
        """rq's heartbeat, in one round trip; a worker hash Redis had lost (HSET created its
        field) is registered again, so `rq info` and registry cleanup see a live worker."""
        if pipeline is not None:
            super().heartbeat(timeout, pipeline=pipeline)
            return
        with self.connection.pipeline() as pipe:
            super().heartbeat(timeout, pipeline=pipe)
            created = pipe.execute()[0]
        if created:
            self.register_again()

    def register_again(self) -> None:
        logger.warning("Redis had lost this worker (restarted?): registering it again")
        with self.connection.pipeline() as pipe:
            pipe.hset(self.key, mapping=self.serialize())
            worker_registration.register(self, pipe)
            pipe.expire(self.key, self.worker_ttl + 60)
            pipe.execute()

    def teardown(self) -> None:
        """On a requested stop, give Redis a few tries, not forever: a supervisor stopping the
        worker while Redis is down must not wait for Redis."""
        if self._shutdown_requested_date is None:
            super().teardown()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
            return
        self.connection.set_retry(Retry(ExponentialBackoff(cap=1.0), SHUTDOWN_RETRIES))
        try:
            super().teardown()  # type: ignore[no-untyped-call]  # rq leaves it unannotated
        except RedisError as exc:
            logger.warning("stopped without telling Redis", extra={"error": str(exc)})
