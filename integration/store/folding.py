"""Folding usage into the rollups: one script per account, then one for what spans accounts.

fold_account.lua writes one account's days over that account's keys only (one slot of a Redis
Cluster); fold_coordinate.lua then marks the accounts dirty and known and raises the source's
watermark, on the {ci} tag. On one Redis the account scripts go in one pipeline (one round trip,
as the single script for a whole batch was); on a cluster, where redis-py cannot pipeline
scripts, one call each, from a few threads so that the masters work at once.

Exactly once, with stream entries (integration/jobs/fold_batch.py): each account records the
entries it folded in the script that folds them, so an entry folded again (its consumer died
after the accounts were written and before the entry was acknowledged) changes nothing there;
the coordination that follows is safe to repeat. A consumer writes only within a lease on its
entries (integration/store/ingest_stream.py `hold`): the script refuses once the lease is over,
and the consumer renews it, dropping the entries another consumer took meanwhile.
"""

from __future__ import annotations

import json
from collections.abc import Callable, Sequence
from concurrent.futures import ThreadPoolExecutor
from dataclasses import dataclass, field
from datetime import datetime
from typing import Any

from integration.config.schema import Metrics
from integration.signals.events import UsageEvent
from integration.store import keys, rollups
from integration.store.cluster import StateRedis, is_cluster
from integration.store.day_groups import AccountDays, by_account

# fold_account.lua's first reply
_WRITTEN, _FOLDED_ALREADY, _MARKS_TAKEN, _LEASE_OVER = 0, 1, 2, 5
# An account forgets the entries folded into it once they are acknowledged, and at the latest
# after this long: an entry still pending then (no consumer ran for a week) could count twice.
FOLDED_ENTRIES_TTL_SECONDS = 7 * 24 * 3600
CLUSTER_THREADS = 8


@dataclass(frozen=True, slots=True)
class Item:
    """One event to fold, the stream entry it came in ('' when folded directly) and its mark
    (keys.message_mark: a Segment messageId, a usage `event_id`), if it has one."""

    event: UsageEvent
    entry: str = ""
    mark: str | None = None


@dataclass(frozen=True, slots=True)
class Lease:
    """Until when (Redis ms; 0: no lease) the accounts take this consumer's writes, and below
    which stream time (ms) every entry is acknowledged, so accounts may forget it."""

    ends_ms: int = 0
    floor_ms: int = 0


# Renews the lease: the new one, and the entries no longer held (another consumer took them).
Renew = Callable[[], tuple[Lease, frozenset[str]]]


@dataclass(slots=True)
class Outcome:
    """What a fold wrote: the events, and the accounts the coordination marks."""

    events: int = 0
    live: set[str] = field(default_factory=set)
    history: set[str] = field(default_factory=set)
    closed_since: float | None = None
    complete_day: int = -1
    taken: set[str] = field(default_factory=set)  # marks stored before: their events dropped
    # Per account written: its events and the stream entries they came in (the audit trail's
    # signal, integration/jobs/fold_batch.py).
    received: dict[str, tuple[int, set[str]]] = field(default_factory=dict)

    @property
    def accounts(self) -> set[str]:
        return self.live | self.history


def fold_items(  # noqa: PLR0913 - what one fold is about
    redis: StateRedis,
    items: Sequence[Item],
    metrics: Metrics,
    now: datetime,
    source: str,
    marks_ttl_seconds: int,
    lease: Lease | None = None,
    renew: Renew | None = None,
) -> Outcome:
    """Fold the items into their accounts, then mark them dirty and known and raise the
    watermark; an account that says it folded an entry already, or holds a mark already, is
    sent the rest again."""
    lease = lease or Lease()
    pending: dict[str, list[Item]] = {}
    for item in items:
        pending.setdefault(item.event.account_id, []).append(item)
    outcome = Outcome()
    fixed = _fixed_args(now, source, marks_ttl_seconds)
    yesterday = rollups.day_number(now.date()) - 1
    while pending:
        calls = _calls(pending, metrics, fixed, lease)
        replies = _run(redis, [(names, args) for names, args, _ in calls.values()])
        again: dict[str, list[Item]] = {}
        renewing = False
        for (account, (_, _, days)), reply in zip(calls.items(), replies, strict=True):
            status, named = int(reply[0]), {keys.text(n) for n in (reply[1] if reply[1:] else [])}
            its = pending[account]
            if status == _WRITTEN:
                outcome.events += len(its)
                _note(outcome, account, days, yesterday)
                events, entries = outcome.received.get(account, (0, set()))
                outcome.received[account] = (events + len(its), entries | {i.entry for i in its})
            elif status == _FOLDED_ALREADY:
                _note(outcome, account, days, yesterday)  # its dirty mark may be missing still
                again[account] = [i for i in its if i.entry not in named]
            elif status == _MARKS_TAKEN:
                outcome.taken |= named
                again[account] = [i for i in its if i.mark not in named]
            else:
                renewing, again[account] = True, its
        if renewing and renew is not None:
            lease, lost = renew()
            again = {a: [i for i in its if i.entry not in lost] for a, its in again.items()}
        pending = {account: its for account, its in again.items() if its}
    coordinate(redis, outcome, now, source)
    return outcome


def _note(outcome: Outcome, account: str, days: AccountDays, yesterday: int) -> None:
    history = any(group[0] < yesterday for group in days.groups)
    (outcome.history if history else outcome.live).add(account)
    outcome.complete_day = max(outcome.complete_day, *(group[0] - 1 for group in days.groups))
    if days.closed_since is not None:
        outcome.closed_since = min(days.closed_since, outcome.closed_since or days.closed_since)


def _fixed_args(now: datetime, source: str, marks_ttl_seconds: int) -> list[Any]:
    """fold_account.lua's ARGV[7..15]: the same for every account of a fold."""
    return [
        now.timestamp(),
        source,
        rollups.day_number(now.date()) - 1,
        rollups.DAY_USERS_TTL_SECONDS,
        (now - rollups.LAST_SEEN_KEEP).timestamp(),
        marks_ttl_seconds,
        rollups.SNAPSHOT_DAYS,
        rollups.TICKETS_KEPT,
        FOLDED_ENTRIES_TTL_SECONDS,
    ]


def _calls(
    pending: dict[str, list[Item]], metrics: Metrics, fixed: list[Any], lease: Lease
) -> dict[str, tuple[list[str], list[Any], AccountDays]]:
    """Each account's KEYS and ARGV (one JSON payload), with its days."""
    events = [item.event for its in pending.values() for item in its]
    grouped = by_account(events, metrics)
    head = [rollups.LAYOUT, rollups.RECENT_DAYS, rollups.OLD_DAYS]
    calls = {}
    for account, its in pending.items():
        days = grouped[account]
        marks = [item.mark for item in its if item.mark]
        entries = sorted({item.entry for item in its if item.entry})
        payload = [days.groups, days.rings, days.user_days, marks, entries]
        args = [*head, json.dumps(payload, separators=(",", ":"))]
        calls[account] = (days.keys(account), [*args, lease.ends_ms, lease.floor_ms, *fixed], days)
    return calls


def _run(redis: StateRedis, calls: list[tuple[list[str], list[Any]]]) -> list[Any]:
    """fold_account.lua once per account: pipelined on one Redis; one call each on a cluster
    (redis-py refuses scripts in a cluster pipeline), from a few threads."""
    script = rollups.registered(redis, "fold_account.lua")
    if is_cluster(redis):
        with ThreadPoolExecutor(max_workers=CLUSTER_THREADS) as pool:
            return list(pool.map(lambda call: script(keys=call[0], args=call[1]), calls))
    pipe = redis.pipeline(transaction=False)
    for names, args in calls:
        script(keys=names, args=args, client=pipe)
    return list(pipe.execute())


def coordinate(redis: StateRedis, outcome: Outcome, now: datetime, source: str) -> None:
    """Dirty, known, the watermark, when closings began (fold_coordinate.lua): after the
    accounts are written, so an evaluation never takes an account before its usage is in."""
    if not outcome.accounts:
        return
    rollups.registered(redis, "fold_coordinate.lua")(
        keys=[
            keys.dirty_accounts(),
            keys.known_accounts(),
            keys.watermarks(),
            keys.ticket_closings_seen(),
        ],
        args=[
            now.timestamp(),
            source,
            outcome.complete_day,
            "" if outcome.closed_since is None else outcome.closed_since,
            json.dumps(sorted(outcome.live)),
            json.dumps(sorted(outcome.history)),
        ],
        client=redis,
    )


def require_layout(redis: StateRedis) -> None:
    """Fold only into rollups marked with this release's layout; a Redis that knows no account
    yet (a new install, or one emptied under running processes) is marked here."""
    stored = redis.get(keys.rollups_layout())
    if stored is None and not redis.exists(keys.known_accounts()):
        redis.set(keys.rollups_layout(), rollups.LAYOUT, nx=True)
        stored = redis.get(keys.rollups_layout())
    rollups.check_layout(stored)


@dataclass(frozen=True, slots=True)
class FoldResult:
    """A direct fold: whether the delivery was seen before, the events folded, and the marks
    found stored (their events dropped)."""

    duplicate: bool
    events: int = 0
    taken: frozenset[str] = frozenset()


def fold_usage(
    redis: StateRedis,
    delivery_key: str,
    events: Sequence[UsageEvent],
    metrics: Metrics,
    now: datetime,
    source: str = "usage",
) -> FoldResult:
    """Fold one delivery directly, not through the ingest stream (tools, tests and benches: the
    web edge only accepts into the stream). Its mark is set first, then its accounts are
    folded: a crash in between loses the delivery, which the stream's fold never does. Events
    with an `event_id` are marked, and one stored before is dropped, as in the stream's fold."""
    if delivery_key != "-" and not redis.set(
        delivery_key, "1", nx=True, ex=rollups.DELIVERY_DEDUPE_SECONDS
    ):
        return FoldResult(duplicate=True)
    require_layout(redis)
    items = [
        Item(event, mark=keys.message_mark(source, event.event_id) if event.event_id else None)
        for event in events
    ]
    ttl = rollups.EVENT_DEDUPE_SECONDS if source == "usage" else rollups.MESSAGE_DEDUPE_SECONDS
    outcome = fold_items(redis, items, metrics, now, source, ttl)
    return FoldResult(False, outcome.events, frozenset(outcome.taken))
