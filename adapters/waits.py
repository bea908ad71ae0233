"""What both CRM transports do when a CRM says "wait": short waits in-process, long ones shared.

A wait longer than a worker should hold (a daily API limit) pauses every worker's calls to that
CRM through one Redis key until it is over; shorter ones are retried here with back-off.
"""

from __future__ import annotations

import logging
import math
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TypeVar

from redis import Redis

from integration.errors import CrmError, CrmRetriableError
from integration.store.keys import text

logger = logging.getLogger(__name__)
T = TypeVar("T")


def _always(error: CrmError) -> bool:
    return True


@dataclass(frozen=True)
class WaitPolicy:
    crm: str
    label: str  # how admins write the CRM's name, for messages
    redis: Redis
    pause_key: str
    pause_status: int
    max_attempts: int
    backoff_seconds: Sequence[float]
    # Waits longer than this are left to RQ's retry instead of holding a worker.
    max_inline_wait_seconds: float = 15.0
    sleep: Callable[[float], None] = time.sleep

    def run(
        self,
        operation: str,
        attempt: Callable[[], T],
        translate: Callable[[Exception, str], CrmError | None],
        may_resend: Callable[[CrmError], bool] = _always,
        before_each: Callable[[], object] | None = None,
    ) -> T:
        """Call `attempt` until it succeeds, waiting in-process as the CRM asks; give up with
        the translated error when the wait is too long (pausing every worker) or when
        `may_resend` says the request may have been done already (a create after a timeout).
        `before_each` (waiting for a rate-limit slot) runs outside the translation: its own
        errors, Redis ones, are not the CRM's."""
        self.check_not_paused(operation)
        for number in range(self.max_attempts):
            if before_each is not None:
                before_each()
            try:
                return attempt()
            except CrmError:
                raise
            except Exception as exc:  # noqa: BLE001 - translated below, or re-raised untouched
                error = translate(exc, operation)
                if error is None:
                    raise
                wait = self.inline_wait(error, number) if may_resend(error) else None
                if wait is None:
                    self.pause_if_long(error)
                    raise error from exc
                logger.warning(
                    "%s asked us to wait; retrying",
                    self.label,
                    extra={
                        "crm": self.crm,
                        "operation": operation,
                        "wait_s": wait,
                        "status": error.status,
                    },
                )
                self.sleep(wait)
        msg = "unreachable: the last attempt raises"
        raise AssertionError(msg)

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
