"""One request budget per CRM, shared by every worker process through Redis.

A moving window (the `limits` package) so that no window of the configured length ever holds more
requests than allowed, however many workers run. Callers wait for a slot rather than fail.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field

from limits import RateLimitItem, RateLimitItemPerSecond
from limits.storage import RedisStorage
from limits.strategies import MovingWindowRateLimiter
from redis import Redis

from integration.store.keys import PREFIX

# Never wait longer than this for one slot; past it something else is wrong (a stuck clock, a
# budget of zero), and the job is better retried later by RQ.
MAX_WAIT_SECONDS = 60.0
POLL_FLOOR_SECONDS = 0.01
# We count a request when it leaves and the CRM counts it when it arrives; arrival jitter moves a
# few requests into the same window, so we keep this share of the budget unused (measured in
# bench/hubspot.py: without it 4 workers reached 22 requests in a 20-request window).
HEADROOM = 0.1


class RateLimitTimeoutError(RuntimeError):
    """No slot became free within MAX_WAIT_SECONDS."""


@dataclass
class SharedRateLimit:
    name: str
    requests: int
    per_seconds: int
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    _limiter: MovingWindowRateLimiter = field(init=False, repr=False)
    _item: RateLimitItem = field(init=False, repr=False)

    def __post_init__(self) -> None:
        storage = RedisStorage(
            "redis://", connection_pool=self.redis.connection_pool, key_prefix=f"{PREFIX}:ratelimit"
        )
        self._limiter = MovingWindowRateLimiter(storage)
        usable = max(1, self.requests - max(1, round(self.requests * HEADROOM)))
        self._item = RateLimitItemPerSecond(usable, self.per_seconds)

    def acquire(self) -> float:
        """Block until this process may send one request; return the seconds waited."""
        waited = 0.0
        while not self._limiter.hit(self._item, self.name):
            if waited >= MAX_WAIT_SECONDS:
                msg = f"no {self.name} request slot free after {waited:.0f}s"
                raise RateLimitTimeoutError(msg)
            reset_at = self._limiter.get_window_stats(self._item, self.name).reset_time
            pause = max(POLL_FLOOR_SECONDS, min(reset_at - time.time(), 1.0))
            self.sleep(pause)
            waited += pause
        return waited
