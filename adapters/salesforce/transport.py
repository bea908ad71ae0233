"""How every Salesforce call is made: login, the API budget, waits and retries.

- Login is lazy (the first call) with the configured flow; simple-salesforce logs in again and
  retries once a session expires (401 INVALID_SESSION_ID).
- After each call the `Sforce-Limit-Info` header (`sf.api_usage`) is kept in Redis, shared by all
  workers; non-urgent writes stop once `api_budget_share` of the daily allocation is used.
- REQUEST_LIMIT_EXCEEDED pauses every worker's calls for the wait it implies, instead of
  hammering; short waits (a locked row, a 5xx) are retried in-process with back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from typing import TypeVar

import requests
from redis import Redis
from simple_salesforce.api import Salesforce

from adapters.salesforce.errors import CRM, translate
from adapters.waits import WaitPolicy
from integration.config.schema import SalesforceCrm as SalesforceSettings
from integration.errors import CrmRetriableError
from integration.store import keys
from integration.store.keys import text

MAX_ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 2.0)
PAUSE_KEY = keys.crm_paused("salesforce")
USAGE_KEY = keys.crm_api_usage("salesforce")
BUDGET_WAIT_SECONDS = 1800.0
T = TypeVar("T")


@dataclass
class SalesforceTransport:
    settings: SalesforceSettings
    login: Callable[[requests.Session], Salesforce]
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    _client: Salesforce | None = field(default=None, init=False, repr=False)
    waits: WaitPolicy = field(init=False, repr=False)

    def __post_init__(self) -> None:
        self.waits = WaitPolicy(
            CRM,
            "Salesforce",
            self.redis,
            PAUSE_KEY,
            403,
            MAX_ATTEMPTS,
            BACKOFF_SECONDS,
            sleep=self.sleep,
        )

    def client(self) -> Salesforce:
        if self._client is None:
            self._client = self.login(requests.Session())
        return self._client

    def call(
        self,
        operation: str,
        send: Callable[[Salesforce], T],
        urgent: bool = True,
        creates: bool = False,
    ) -> T:
        """Send with the budget, waits and retries. A create is not retried here: after a
        timeout or a 5xx it may exist, so the caller looks (by the task key field) first."""

        def attempt() -> T:
            client = self.client()
            result = send(client)
            self._record_usage(client)
            return result

        # run() checks for a pause first (it says how long), then the budget (it only says why).
        budget = None if urgent else (lambda: self._check_budget(operation))
        return self.waits.run(operation, attempt, translate, lambda error: not creates, budget)

    def api_usage(self) -> tuple[int, int] | None:
        raw = self.redis.hgetall(USAGE_KEY)
        if not raw:
            return None
        return int(text(raw[b"used"])), int(text(raw[b"total"]))

    def _record_usage(self, client: Salesforce) -> None:
        usage = (getattr(client, "api_usage", None) or {}).get("api-usage")
        if usage is not None:
            self.redis.hset(USAGE_KEY, mapping={"used": usage.used, "total": usage.total})

    def _check_budget(self, operation: str) -> None:
        usage = self.api_usage()
        if usage is None or not usage[1]:
            return
        used, total = usage
        if used / total >= self.settings.api_budget_share:
            msg = (
                f"{used} of the org's {total} daily API requests are used, past the "
                f"{self.settings.api_budget_share:.0%} kept for non-urgent writes"
            )
            raise CrmRetriableError(CRM, operation, msg, None, BUDGET_WAIT_SECONDS)
