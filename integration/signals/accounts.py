"""What the service knows about one product account, as plain values the risk rules read."""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from datetime import UTC, date, datetime
from typing import Any

from integration.signals.events import JobChanged


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
    # When each support ticket still open was (last) opened, oldest first; a replay sees none
    # opened after its date. And since when closing events arrive (None: never, so no ticket
    # can be known to be open still).
    open_tickets: tuple[datetime, ...] = ()
    ticket_closings_since: datetime | None = None
    # Users active in the 30 days that ended 30 days before `last_day` (None: not recorded).
    active_users_30d_before: int | None = None


@dataclass(frozen=True, slots=True)
class AccountState:
    """Everything the rules look at for one account, loaded by the job."""

    account_id: str
    usage: UsageHistory
    people: tuple[JobChanged, ...] = ()
    # Facts the CRM holds (config account_facts): renewal_date, segment, plan, seats and
    # onboarding_start, as the CRM returns them (text).
    facts: Mapping[str, str] = field(default_factory=dict)
    # The details of each reason the last evaluation raised, by reason key: a flag still open is
    # judged against what it found then (a drop against the level before it), not anew.
    previous_reasons: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)

    @property
    def seats(self) -> int | None:
        """Licenses purchased: the CRM's figure when it has one (the contract lives there),
        else what usage events or the import reported."""
        try:
            purchased = int(float(self.facts.get("seats", "")))
        except (ValueError, OverflowError):  # empty, not a number, or "1e309"
            purchased = 0
        return purchased if purchased > 0 else self.usage.seats

    @property
    def onboarding_start(self) -> date | None:
        """When onboarding began: the CRM's date, else the first day the account used us."""
        return fact_date(self.facts.get("onboarding_start", "")) or self.usage.first_day


def fact_date(raw: str) -> date | None:
    """A CRM date: ISO text (HubSpot date properties, Salesforce Date fields), or HubSpot's
    older milliseconds since the epoch; None when empty or unreadable."""
    text = raw.strip()
    try:
        if text.isdigit() and len(text) > 8:
            return datetime.fromtimestamp(int(text) / 1000, UTC).date()
        return date.fromisoformat(text[:10])
    except (ValueError, OverflowError, OSError):  # not a date, or out of the calendar's range
        return None
