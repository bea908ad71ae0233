"""Usage events summed per account and day in Python, before Redis sees them.

A fold (integration/store/folding.py) sends each account's days to fold_account.lua as arrays
(not objects: one small JSON argument is cheap for the client to build and for Lua to decode),
with the names of the rings and the days with users whose keys the call declares.
"""

from __future__ import annotations

from collections import Counter
from collections.abc import Sequence
from dataclasses import dataclass, field
from datetime import date
from typing import Any

from integration.config.schema import Metrics
from integration.signals.events import UsageEvent
from integration.store import keys

NPS_DETRACTOR_MAX = 6  # NPS: 0-6 detractors, 7-8 passives, 9-10 promoters
# Segment calls that describe people and accounts rather than product use.
NOT_PRODUCT_USE = frozenset({"identify", "group"})
ACTIVE_USERS = "active_users"
_EPOCH = date(1970, 1, 1)


@dataclass(slots=True)
class _Group:
    """One account's events on one day, summed in Python before Redis sees them."""

    last_ts: float = 0.0
    seats: int | None = None
    seats_ts: float = 0.0
    users: dict[str, float] = field(default_factory=dict)  # user id -> last activity ts
    tally: Counter[str] = field(default_factory=Counter)
    tickets_opened: list[tuple[float, str]] = field(default_factory=list)  # (ts, hashed id)
    tickets_closed: list[tuple[float, str]] = field(default_factory=list)


def _tally(events: Sequence[UsageEvent], metrics: Metrics) -> dict[tuple[str, int], _Group]:
    """Each (account, day number) with its events summed."""
    counted = {name: frozenset(events) for name, events in metrics.counted.items()}
    logins = frozenset(metrics.login_events)
    nps, tickets = frozenset(metrics.nps_events), frozenset(metrics.ticket_opened_events)
    csat, closed = frozenset(metrics.csat_events), frozenset(metrics.ticket_closed_events)
    not_usage = nps | tickets | csat | closed | NOT_PRODUCT_USE
    grouped: dict[tuple[str, int], _Group] = {}
    for event in events:
        key = (event.account_id, (event.occurred_at.date() - _EPOCH).days)
        group = grouped.get(key) or grouped.setdefault(key, _Group())
        ts = event.occurred_at.timestamp()
        if event.seats is not None and ts >= group.seats_ts:
            group.seats, group.seats_ts = event.seats, ts
        if event.event not in not_usage:  # NPS answers and tickets are not product use
            group.last_ts = max(group.last_ts, ts)
            group.users[event.user_id] = max(group.users.get(event.user_id, 0.0), ts)
        tally = group.tally
        tally["events"] += 1
        if event.event in logins:
            tally["logins"] += 1
        if event.event in nps:
            tally["nps_responses"] += 1
            score = event.properties.get(metrics.nps_score_property)
            if isinstance(score, int | float) and score <= NPS_DETRACTOR_MAX:
                tally["nps_detractors"] += 1
        if event.event in csat:
            tally["csat_responses"] += 1
            score = event.properties.get(metrics.csat_score_property)
            if isinstance(score, int | float) and score >= metrics.csat_satisfied_min:
                tally["csat_satisfied"] += 1
        if event.event in tickets:
            tally["tickets_opened"] += 1
        if event.event in tickets or event.event in closed:
            ticket = event.properties.get(metrics.ticket_id_property)
            if isinstance(ticket, str | int) and not isinstance(ticket, bool):
                track = group.tickets_opened if event.event in tickets else group.tickets_closed
                track.append((ts, keys.ticket_member(str(ticket))))
        for name, names in counted.items():
            if event.event in names:
                tally[name] += 1
    return grouped


@dataclass(slots=True)
class AccountDays:
    """One account's days as fold_account.lua reads them, and the keys they write."""

    groups: list[list[Any]] = field(default_factory=list)
    rings: list[str] = field(default_factory=list)  # metrics whose rings are written
    user_days: list[int] = field(default_factory=list)  # days whose user records are written
    closed_since: float | None = None  # the earliest ticket closing among them

    def keys(self, account_id: str) -> list[str]:
        """Every key the call writes, in the order fold_account.lua reads KEYS."""
        return keys.account_fold_keys(account_id, self.rings, self.user_days)


def by_account(events: Sequence[UsageEvent], metrics: Metrics) -> dict[str, AccountDays]:
    """Events per account and day, so Redis does one update per day of each account."""
    accounts: dict[str, AccountDays] = {}
    rings: dict[str, set[str]] = {}
    for (account, day), group in _tally(events, metrics).items():
        days = accounts.get(account) or accounts.setdefault(account, AccountDays())
        named = rings.setdefault(account, set())
        named.update(group.tally)
        if group.users:
            named.add(ACTIVE_USERS)
            days.user_days.append(day)
        if group.tickets_closed:
            first = min(ts for ts, _ in group.tickets_closed)
            days.closed_since = min(first, days.closed_since or first)
        days.groups.append(
            [
                day,
                group.last_ts,
                group.seats,
                group.seats_ts,
                [item for user, seen in group.users.items() for item in (seen, user)],
                sorted(group.tally.items()),
                group.tickets_opened,
                group.tickets_closed,
            ]
        )
    for account, days in accounts.items():
        days.rings = sorted(rings[account])
    return accounts
