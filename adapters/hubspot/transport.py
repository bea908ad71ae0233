"""How every HubSpot call is made: the SDK client, the shared rate limit, waits and retries.

Each call waits for a slot in the shared Redis rate limit, then retries what HubSpot says is
temporary (429 with the wait it asks for, 423, 5xx, timeouts) a few times in-process; a wait too
long to hold a worker (the daily limit) pauses every worker's calls through Redis, and the error
is raised for RQ to retry later. Refusals become CrmFatalError with HubSpot's message and
correlationId. hubspot-api-client's own urllib3 retry is left off: it never retries POST
(reference/hubspot.md 7).

The daily budget (adapters/budget.py): each answer's X-HubSpot-RateLimit-Daily and -Daily-Remaining
headers go into the shared ledger (read from the generated ApiClient's response through an
api_factory, since every `hub.crm...` access builds a new client). Search answers and OAuth apps
get no daily headers: those calls are counted, against `budget.hubspot_daily_limit` when nothing
better is known today. Bulk work stops once only the reserve is left; the DAILY 429 pauses every
worker until midnight in `budget.hubspot_time_zone`, when HubSpot's counter resets.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any, TypeVar

from hubspot import HubSpot
from hubspot.discovery.discovery_base import DiscoveryBase
from redis import Redis

from adapters import budget as budgets
from adapters.hubspot.auth import TokenSource
from adapters.hubspot.errors import CRM, DailyLimitError, translate
from adapters.ledger import Ledger
from adapters.ratelimit import SharedRateLimit
from adapters.spend import BudgetGate
from adapters.waits import WaitPolicy
from integration.config.schema import Budget
from integration.config.schema import HubSpotCrm as HubSpotSettings
from integration.errors import CrmError
from integration.store import keys

MAX_ATTEMPTS = 4
BACKOFF_SECONDS = (1.0, 2.0, 4.0)
PAUSE_KEY = keys.crm_paused("hubspot")
# Answers that mean HubSpot did nothing with the request, so sending it again is safe.
UNPROCESSED = frozenset({429, 423})
# Field refreshes: bulk work, held once only the reserve is left, unless marked urgent.
BULK_OPERATIONS = frozenset({"batch_update_companies"})
# https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines
DAILY_HEADER = "x-hubspot-ratelimit-daily"
DAILY_REMAINING_HEADER = "x-hubspot-ratelimit-daily-remaining"
T = TypeVar("T")


def _utcnow() -> datetime:
    return datetime.now(UTC)


def daily_figures(headers: Mapping[str, str] | None) -> tuple[int, int] | None:
    """(used, limit) from an answer's daily headers, None when it has none (search, OAuth)."""
    found = {str(k).lower(): str(v) for k, v in (headers or {}).items()}
    limit, remaining = found.get(DAILY_HEADER, ""), found.get(DAILY_REMAINING_HEADER, "")
    if not (limit.isdigit() and remaining.isdigit()):
        return None
    return max(0, int(limit) - int(remaining)), int(limit)


@dataclass
class HubSpotTransport:
    settings: HubSpotSettings
    tokens: TokenSource
    redis: Redis
    sleep: Callable[[float], None] = time.sleep
    # config.budget, set by adapters.build_adapter (the adapter is built from crm.hubspot only).
    budget: Budget = field(default_factory=Budget)
    clock: Callable[[], datetime] = _utcnow
    token: str = field(default="", init=False, repr=False)
    _headers: Mapping[str, str] | None = field(default=None, init=False, repr=False)
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
            self._client = HubSpot(
                access_token=token, host=base, base_url=base, api_factory=self._api_factory
            )
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
        gate = self.gate()
        priority = budgets.current_priority()
        if priority is None and operation in BULK_OPERATIONS:
            priority = budgets.Priority.BULK

        def attempt() -> T:
            hub = self.client()
            self._headers = None
            try:
                result = send(hub)
            except Exception as exc:
                self._note(gate, getattr(exc, "headers", None) or self._headers)
                raise
            self._note(gate, self._headers)
            return result

        def may_resend(error: CrmError) -> bool:
            return not creates or error.status in UNPROCESSED

        def before_each() -> None:
            gate.check(operation, priority)
            limit.acquire()

        def translated(exc: Exception, operation: str) -> CrmError | None:
            error = translate(exc, operation)
            if isinstance(error, DailyLimitError):
                gate.spent()
                if error.asked_seconds is None:
                    error.retry_after_seconds = gate.seconds_until_reset()
            return error

        return self.waits.run(operation, attempt, translated, may_resend, before_each)

    def gate(self) -> BudgetGate:
        """The budget's checks and records for one call (the config may have been set late)."""
        return BudgetGate(Ledger(self.redis, CRM), CRM, "HubSpot", self.budget, None, self.clock)

    def _note(self, gate: BudgetGate, headers: Mapping[str, str] | None) -> None:
        figures = daily_figures(headers)
        if figures is None:
            gate.count()
        else:
            gate.report(*figures, source="headers")

    def _api_factory(self, package: Any, api_name: str, config: dict[str, Any]) -> Any:  # noqa: ANN401 - the SDK's generated classes are untyped
        """The SDK's own factory, with each response's headers kept for the ledger."""
        api = DiscoveryBase._default_api_factory(package, api_name, config)  # noqa: SLF001 - the SDK's documented default, wrapped
        client = api.api_client
        request = client.request

        def kept(*args: Any, **kwargs: Any) -> Any:  # noqa: ANN401 - the SDK's response
            response = request(*args, **kwargs)
            self._headers = dict(response.getheaders())
            return response

        client.request = kept
        return api
