"""How every Salesforce call is made: login, the API budget, waits and retries.

- Login is lazy (the first call) with the configured flow; simple-salesforce logs in again and
  retries once a session expires (401 INVALID_SESSION_ID).
- After each call the `Sforce-Limit-Info` header (`sf.api_usage`) goes into the API ledger every
  worker shares (adapters/budget.py); bulk work (field writes, non-urgent playbooks) stops once
  only the reserve is left (`budget.reserve_share`, or `api_budget_share` if lower).
- REQUEST_LIMIT_EXCEEDED for the daily allocation pauses every worker's calls until calls leave
  the rolling 24 h window (estimated from the ledger), instead of hammering; short waits (a
  locked row, a 5xx) are retried in-process with back-off.
"""

from __future__ import annotations

import time
from collections.abc import Callable
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import TypeVar

import requests
from redis import Redis
from simple_salesforce.api import Salesforce

from adapters import budget as budgets
from adapters.ledger import Ledger
from adapters.salesforce.errors import CRM, DailyLimitError, translate
from adapters.spend import BudgetGate
from adapters.waits import WaitPolicy
from integration.config.schema import Budget
from integration.config.schema import SalesforceCrm as SalesforceSettings
from integration.errors import CrmError, CrmRetriableError
from integration.store import keys

MAX_ATTEMPTS = 3
BACKOFF_SECONDS = (1.0, 2.0)
PAUSE_KEY = keys.crm_paused("salesforce")
LIMIT_EXCEEDED = "REQUEST_LIMIT_EXCEEDED"
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


@dataclass
class SalesforceTransport:
    settings: SalesforceSettings
    login: Callable[[requests.Session], Salesforce]
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    # config.budget, set by adapters.build_adapter (the adapter is built from crm.salesforce).
    budget: Budget = field(default_factory=Budget)
    clock: Callable[[], datetime] = _utcnow
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
        """Send with the budget, waits and retries. `urgent=False` marks bulk work (field
        writes) unless the caller set a priority (adapters/budget.py `spending`): an urgent
        playbook's field update may spend the reserve, as on HubSpot. A create is not retried
        here: after a timeout or a 5xx it may exist, so the caller looks (by the task key
        field) first."""
        gate = self.gate()
        priority = budgets.current_priority()
        if priority is None and not urgent:
            priority = budgets.Priority.BULK

        def attempt() -> T:
            client = self.client()
            try:
                result = send(client)
            except Exception:
                gate.count()  # sf.api_usage is only read from successful answers
                raise
            self._record_usage(gate, client)
            return result

        def translated(exc: Exception, operation: str) -> CrmError | None:
            error = translate(exc, operation)
            daily = isinstance(error, DailyLimitError) or self._spent_by_ledger(error)
            if daily and isinstance(error, CrmRetriableError):
                gate.spent()
                error.retry_after_seconds = gate.seconds_until_reset()
            return error

        # run() checks for a pause first (it says how long), then the budget.
        return self.waits.run(
            operation,
            attempt,
            translated,
            lambda error: not creates,
            lambda: gate.check(operation, priority),
        )

    def gate(self) -> BudgetGate:
        return BudgetGate(
            Ledger(self.redis, CRM),
            CRM,
            "Salesforce",
            self.budget,
            self.settings.api_budget_share,
            self.clock,
        )

    def api_usage(self) -> tuple[int, int] | None:
        """(used, allocation) as Salesforce last said, from the shared ledger."""
        figures = Ledger(self.redis, CRM).figures()
        if figures is None or figures.limit is None:
            return None
        return figures.used, figures.limit

    def _record_usage(self, gate: BudgetGate, client: Salesforce) -> None:
        usage = (getattr(client, "api_usage", None) or {}).get("api-usage")
        if usage is None:
            gate.count()
        else:
            gate.report(usage.used, usage.total, "sforce-limit-info")

    def _spent_by_ledger(self, error: CrmError | None) -> bool:
        """A REQUEST_LIMIT_EXCEEDED naming no limit counts as the daily one when the ledger
        says the allocation is spent."""
        if not isinstance(error, CrmRetriableError) or LIMIT_EXCEEDED not in str(error):
            return False
        usage = self.api_usage()
        return usage is not None and usage[0] >= usage[1]
