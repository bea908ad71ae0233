"""`integration fold` (Procfile `fold:`): folds the ingest stream into the usage rollups.

The web edge only accepts (integration/store/ingest_stream.py); this consumer reads entries in
the stream's consumer group on the state Redis, folds them (integration/jobs/fold_batch.py),
and queues the dirty-account evaluation on the queue Redis when none is queued, as the web edge
did when it folded: a job always follows usage, with or without cron. Run one or more; each
takes over a dead one's entries after a few seconds. Its Redis clients wait out a restart, as
the worker's does.
"""

from __future__ import annotations

import logging
import os
import socket
import time
from collections.abc import Callable, Sequence
from datetime import datetime

from redis import Redis
from redis.exceptions import RedisError

from integration.config.schema import Config
from integration.errors import StorageUnavailableError
from integration.jobs.fold_batch import Folded, fold_entries
from integration.jobs.fold_signals import SignalBuffer, every_seconds
from integration.jobs.queues import (
    enqueue_dirty_evaluation,
    evaluation_job_key,
    next_evaluation_job_key,
    next_interval,
)
from integration.store import ingest_stream
from integration.store.cluster import StateRedis
from integration.store.ingest_stream import Entry

logger = logging.getLogger(__name__)

# Entries read per fold, at most: a quiet stream gives a fold what it has (a few entries, folded
# within milliseconds); a backlog gives it up to 500 deliveries, whose events of the same
# account-day merge into one script call each: with every event from another of 5,000 accounts,
# 500 entries drain twice as fast as 100 (bench/ingest.py: 46,600 against 24,600 events/s).
READ_COUNT = 500
BLOCK_MS = 1_000  # under the client's 5 s socket timeout (integration/jobs/context.py)
CLAIM_EVERY_SECONDS = 2.0
RETRY_SECONDS = 2.0


def consumer_name() -> str:
    """Unique per process, readable in XINFO CONSUMERS."""
    return f"{socket.gethostname()}-{os.getpid()}"


class EvaluationQueue:
    """Queues the dirty-account evaluation after a fold, on the queue Redis: now when this
    interval's job does not exist, else at the start of the next interval when that one does
    not (this interval's may have run before these accounts changed). The enqueue is idempotent
    (unique job ids); once both jobs are seen to exist, this process asks no more until the
    interval changes: one round trip per interval, not per fold."""

    def __init__(self, redis: Redis, interval_seconds: int) -> None:
        self.redis, self.interval = redis, interval_seconds
        self.seen: tuple[str, str] | None = None

    def after(self, folded: Folded) -> None:
        if not folded.accounts:
            return
        now = folded.now
        job_key = evaluation_job_key(now, self.interval)
        next_key = next_evaluation_job_key(now, self.interval)
        if self.seen == (job_key, next_key):
            return
        try:
            self._queue(now, job_key, next_key)
        except RedisError:
            # The usage is folded and its accounts are marked dirty: the next fold, or the
            # sweep in integration/jobs/cron.py, queues the evaluation.
            logger.warning("evaluation not queued; the next fold or the sweep will")

    def _queue(self, now: datetime, job_key: str, next_key: str) -> None:
        exists, next_exists = (bool(self.redis.exists(key)) for key in (job_key, next_key))
        if not exists:
            enqueue_dirty_evaluation(self.redis, now, self.interval)
        elif not next_exists:
            at = next_interval(now, self.interval)
            enqueue_dirty_evaluation(self.redis, now, self.interval, at=at)
        else:
            self.seen = (job_key, next_key)


def fold(
    redis: StateRedis,
    entries: Sequence[Entry],
    consumer: str,
    config: Config,
    queue: EvaluationQueue,
    signals: SignalBuffer | None = None,
) -> int:
    """Fold entries this consumer holds and queue the evaluations asked for; events folded.
    The audit trail's signals go through `signals` (integration/jobs/fold_signals.py)."""
    folds = fold_entries(redis, entries, consumer, config, signals)
    for folded in folds:
        queue.after(folded)
    return sum(folded.events for folded in folds)


def fold_backlog(
    redis: StateRedis, queue_redis: Redis, config: Config, consumer: str = "in-process"
) -> int:
    """Fold everything the stream on the state Redis holds, in this process, until it is
    empty, taking over any entry another consumer holds (tests and tools, where no other
    consumer runs); evaluations are queued on `queue_redis`."""
    ingest_stream.ensure_group(redis)
    queue = EvaluationQueue(queue_redis, config.evaluation.interval_seconds)
    signals = SignalBuffer(config.history, every_seconds(config.evaluation.settle_seconds))
    total = 0
    while True:
        entries = ingest_stream.claim(redis, consumer, READ_COUNT, idle_ms=0)
        entries += ingest_stream.read(redis, consumer, READ_COUNT, None)
        if not entries:
            signals.flush(redis)
            return total
        total += fold(redis, entries, consumer, config, queue, signals)


class Consumer:
    """One fold consumer: claims a dead consumer's entries now and then, folds what it reads."""

    def __init__(
        self, redis: StateRedis, queue_redis: Redis, config: Config, name: str | None = None
    ) -> None:
        self.redis, self.config = redis, config
        self.queue = EvaluationQueue(queue_redis, config.evaluation.interval_seconds)
        self.signals = SignalBuffer(config.history, every_seconds(config.evaluation.settle_seconds))
        self.name = name or consumer_name()
        self.claimed_at = float("-inf")

    def step(self, block_ms: int | None = BLOCK_MS) -> int:
        """One read (after a claim when one is due) and its fold; events folded."""
        entries: list[Entry] = []
        if time.monotonic() - self.claimed_at >= CLAIM_EVERY_SECONDS:
            self.claimed_at = time.monotonic()
            entries = ingest_stream.claim(self.redis, self.name, READ_COUNT)
        if not entries:
            entries = ingest_stream.read(self.redis, self.name, READ_COUNT, block_ms)
        if not entries:
            self.signals.flush(self.redis)  # nothing to fold: the trail's signals now
            return 0
        return fold(self.redis, entries, self.name, self.config, self.queue, self.signals)

    def run(self, stopped: Callable[[], bool]) -> None:
        """Fold until `stopped()`; Redis errors and a refused layout wait and try again (the
        entries stay pending on this consumer and are claimed back)."""
        ingest_stream.ensure_group(self.redis)
        logger.info("fold consumer started", extra={"consumer": self.name})
        while not stopped():
            try:
                self.step()
            except StorageUnavailableError as exc:
                logger.error("fold refused: %s", exc)  # noqa: TRY400 - the message says what to do
                time.sleep(RETRY_SECONDS)
            except RedisError as exc:
                logger.warning("fold failed, retrying: %s", type(exc).__name__)
                time.sleep(RETRY_SECONDS)
                self._ensure_group()
        try:
            self.signals.flush(self.redis)
        except RedisError:
            logger.warning("the audit trail's last usage signals were not written")

    def _ensure_group(self) -> None:
        """A Redis that lost its data lost the group too (NOGROUP): create it again."""
        try:
            ingest_stream.ensure_group(self.redis)
        except RedisError:
            logger.warning("could not create the ingest consumer group yet")
