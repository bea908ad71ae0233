"""How every HubSpot call is made: the SDK client, the shared rate limit, waits and retries.

Each call waits for a slot in the shared Redis rate limit, then retries what HubSpot says is
temporary (429 with the wait it asks for, 423, 5xx, timeouts) a few times in-process; a wait too
long to hold a worker (the daily limit) pauses every worker's calls through Redis, and the error
is raised for RQ to retry later. Refusals become CrmFatalError with HubSpot's message and
correlationId. hubspot-api-client's own urllib3 retry is left off: it never retries POST
(reference/hubspot.md 7).
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

from hubspot import HubSpot
from redis import Redis

from adapters.hubspot.auth import TokenSource
from adapters.hubspot.errors import CRM, translate
from adapters.ratelimit import SharedRateLimit
from adapters.waits import WaitPolicy
from integration.config.schema import HubSpotCrm as HubSpotSettings
from integration.errors import CrmError
from integration.store import keys

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0)
PAUSE_KEY = keys.crm_paused("hubspot")
# Answers that mean HubSpot did nothing with the request, so sending it again is safe.
UNPROCESSED = frozenset({429, 423})
T = TypeVar("T")


@dataclass
class HubSpotTransport:
    settings: HubSpotSettings
    tokens: TokenSource
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    token: str = field(default="", init=False, repr=False)
    _client: HubSpot | None = field(default=None, init=False, repr=False)
    _limit: SharedRateLimit = field(init=False, repr=False)
    _search_limit: SharedRateLimit = field(init=False, repr=False)
    waits: WaitPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.waits = WaitPolicy(
            CRM,
            "HubSpot",
            self.redis,
            PAUSE_KEY,
            429,
            MAX_ATTEMPTS,
            BACKOFF_SECONDS,
            sleep=self.sleep,
        )
        rate = self.settings.rate_limit
        self._limit = SharedRateLimit(
            "hubspot", rate.requests, rate.per_seconds, self.redis, self.sleep
        )
        self._search_limit = SharedRateLimit(
            "hubspot-search", rate.search_per_second, 1, self.redis, self.sleep
        )

    def client(self) -> HubSpot:
        """The SDK client, rebuilt when an OAuth token is refreshed (its APIs copy the token)."""
        token = self.tokens.token()
        if self._client is None or token != self.token:
            base = self.settings.base_url.rstrip("/")
            self._client = HubSpot(access_token=token, host=base, base_url=base)
            self.token = token
        return self._client

    def call(
        self,
        operation: str,
        send: Callable[[HubSpot], T],
        search: bool = False,
        creates: bool = False,
    ) -> T:
        """Send with waits and retries. A create is retried here only when HubSpot refused it
        unprocessed (429, 423): after a timeout or a 5xx it may exist, so the caller must look
        before creating again (playbooks/execution.py does, by the task's key)."""
        limit = self._search_limit if search else self._limit

        def attempt() -> T:
            return send(self.client())

        def may_resend(error: CrmError) -> bool:
            return not creates or error.status in UNPROCESSED

        return self.waits.run(operation, attempt, translate, may_resend, limit.acquire)
