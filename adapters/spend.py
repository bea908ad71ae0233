"""What a transport does with the API budget around one call: check it, then record the answer.

Before a call: once the CRM's quota is spent every call waits for the reset (HubSpot: what
its headers said today; Salesforce is left to its own refusal, since a rolling window frees
calls we cannot see); once only the reserve is left, bulk work waits while urgent work and
the lookups that find it go on. After a call: the CRM's figures (or one more counted call) go
into the shared ledger. A wait is a CrmRetriableError with the seconds until the budget frees,
which RQ's retry takes as its delay (integration/jobs/evaluate.py `crm_job`).
"""

from __future__ import annotations

import logging
from collections.abc import Callable
from dataclasses import dataclass
from datetime import UTC, datetime

from adapters import budget as budgets
from adapters.budget import BudgetStatus, Priority
from adapters.ledger import DAY_SECONDS, Figures, Ledger
from integration.config.schema import Budget
from integration.errors import CrmRetriableError

logger = logging.getLogger(__name__)
# Nothing was sent: the caller may send it again without looking for it first (errors.py).
NOT_SENT_STATUS = 429
# When our own calls cannot tell when a rolling window frees enough, come back in this long.
UNKNOWN_WAIT_SECONDS = 1800.0


@dataclass(frozen=True, slots=True)
class BudgetGate:
    ledger: Ledger
    crm: str
    label: str
    budget: Budget
    # Salesforce's api_budget_share (None for HubSpot): bulk work stops at the lower bar.
    api_budget_share: float | None
    clock: Callable[[], datetime]

    @property
    def share(self) -> float:
        share = 1 - self.budget.reserve_share
        return share if self.api_budget_share is None else min(share, self.api_budget_share)

    def check(self, operation: str, priority: Priority | None) -> None:
        """Raise CrmRetriableError (nothing sent) when this call must wait for the budget."""
        now = self.clock()
        figures = budgets.current_figures(self.crm, self.ledger.figures(), self.budget, now)
        if figures.limit is None:
            return
        rolling = self.crm in budgets.ROLLING
        spent = figures.used >= figures.limit and not rolling
        held = priority is Priority.BULK and not self._stale(figures, now)
        reserved = budgets.reserved_calls(figures.limit, self.share)
        if not spent and not (held and figures.limit - figures.used <= reserved):
            return
        status = self.status(now)
        assert status is not None  # noqa: S101 - the limit is known, checked above
        if spent:
            wait = self._wait(status, now, status.limit)
            msg = (
                f"{status.used} of {budgets.OWNERS[self.crm]} {status.limit} daily API requests "
                f"are used: every call waits for the reset at {self._at(now, wait)}"
            )
        else:
            wait = self._wait(status, now, status.limit - status.reserved)
            msg = (
                f"{status.used} of {budgets.OWNERS[self.crm]} {status.limit} daily API requests "
                f"are used: the last {status.reserved} are kept for urgent playbooks "
                f"(budget.reserve_share), so bulk work waits until about "
                f"{self._at(now, wait)}"
            )
        logger.info(
            "API budget holds a call",
            extra={"crm": self.crm, "operation": operation, "wait_s": wait},
        )
        raise CrmRetriableError(self.crm, operation, msg, NOT_SENT_STATUS, wait)

    def status(self, now: datetime) -> BudgetStatus | None:
        calls = self.ledger.calls(now.timestamp() - DAY_SECONDS)
        figures = self.ledger.figures()
        return budgets.status_of(self.crm, figures, calls, self.budget, self.share, now)

    def report(self, used: int, limit: int, source: str) -> None:
        now = self.clock()
        self.ledger.report(used, limit, source, now.timestamp(), self._period(now))

    def count(self) -> None:
        now = self.clock()
        configured = self.budget.hubspot_daily_limit if self.crm == "hubspot" else None
        self.ledger.count(now.timestamp(), self._period(now), configured)

    def spent(self) -> None:
        now = self.clock()
        self.ledger.spent(now.timestamp(), self._period(now))

    def seconds_until_reset(self) -> float:
        """Until the CRM takes calls again after a daily-limit refusal (see `_wait`)."""
        now = self.clock()
        if self.crm not in budgets.ROLLING:  # midnight, whether or not the limit is known
            where = budgets.zone(self.budget.hubspot_time_zone)
            return (budgets.next_midnight(now, where) - now).total_seconds()
        status = self.status(now)
        if status is None:
            return UNKNOWN_WAIT_SECONDS
        return self._wait(status, now, status.limit)

    def _wait(self, status: BudgetStatus, now: datetime, below: int) -> float:
        calls = self.ledger.calls(now.timestamp() - DAY_SECONDS)
        wait = budgets.seconds_until_free(status, calls, now, below)
        return UNKNOWN_WAIT_SECONDS if wait is None else wait

    def _at(self, now: datetime, wait: float) -> str:
        where = budgets.zone(self.budget.hubspot_time_zone) if self.crm == "hubspot" else UTC
        return budgets.describe_time(now, wait, where)

    def _period(self, now: datetime) -> str:
        return budgets.period(self.crm, self.budget, now)

    def _stale(self, figures: Figures, now: datetime) -> bool:
        return budgets.is_stale(self.crm, figures.reported_at, now)
