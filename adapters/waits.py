"""What both CRM transports do when a CRM says "wait": short waits in-process, long ones shared.

A wait longer than a worker should hold (a daily API limit) pauses every worker's calls to that
CRM through one Redis key until it is over; shorter ones are retried here with back-off.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from redis import Redis

from integration.errors import CrmError, CrmRetriableError
from integration.keys import text


@dataclass(frozen=True)
class WaitPolicy:
    crm: str
    label: str  # how admins write the CRM's name, for messages
    redis: Redis
    pause_key: str
    pause_status: int
    max_attempts: int
    backoff_seconds: Sequence[float]
    max_inline_wait_seconds: float = 15.0

    def check_not_paused(self, operation: str) -> None:
        remaining = self.redis.ttl(self.pause_key)
        if remaining and remaining > 0:
            why = text(self.redis.get(self.pause_key) or b"")
            msg = f"{self.label} calls are paused for {remaining}s more: {why}"
            raise CrmRetriableError(self.crm, operation, msg, self.pause_status, float(remaining))

    def pause_if_long(self, error: CrmError) -> None:
        wait = error.retry_after_seconds if isinstance(error, CrmRetriableError) else None
        if wait and wait > self.max_inline_wait_seconds:
            self.redis.set(self.pause_key, str(error), ex=math.ceil(wait))

    def inline_wait(self, error: CrmError, attempt: int) -> float | None:
        """Seconds to wait before trying again in-process, or None to give up here."""
        if not isinstance(error, CrmRetriableError) or attempt + 1 >= self.max_attempts:
            return None
        wait = error.retry_after_seconds
        if wait is None:
            wait = self.backoff_seconds[min(attempt, len(self.backoff_seconds) - 1)]
        return wait if wait <= self.max_inline_wait_seconds else None
