"""What the service knows about one product account, as plain values the risk rules read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import date, datetime

from integration.signals import JobChanged


@dataclass(frozen=True, slots=True)
class UsageHistory:
    """Daily counts ending on `last_day` (oldest first) plus the account facts kept beside them."""

    account_id: str
    last_day: date
    daily_active_users: tuple[int, ...]
    daily_events: tuple[int, ...]
    first_day: date | None
    seats: int | None
    active_users_30d: int
    last_active: datetime | None
    # Every other daily counter by metric name ("events", "logins", configured ones), same days.
    daily_metrics: Mapping[str, tuple[int, ...]] = field(default_factory=dict)
    # When each support ticket still open was opened (oldest first; a replay sees none opened
    # after its date), and whether closing events arrive at all (else no ticket can be "old").
    open_tickets: tuple[datetime, ...] = ()
    ticket_closings_arrive: bool = False
    # Users active in the 30 days that ended 30 days before `last_day` (None: not recorded).
    active_users_30d_before: int | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """Everything the rules look at for one account, loaded by the job."""

    account_id: str
    usage: UsageHistory
    people: tuple[JobChanged, ...] = ()
    # Facts the CRM holds: renewal_date (YYYY-MM-DD), segment, plan.
    facts: Mapping[str, str] = field(default_factory=dict)
