"""One fold of ingest stream entries: parse the accepted bodies again, merge, fold, acknowledge.

Entries of one source accepted on the same day are folded together, so the events of an
account-day are merged across deliveries (a hundred single-event deliveries of one account
become one group), each account in a script of its own (integration/store/folding.py). What a
delivery's own request used to decide at accept time is decided here, in stream order, exactly
as consecutive requests decided it: an `event_id` or a Segment messageId stored before (or
earlier in the same fold) counts once, and a Segment track is tied to its account by the last
group call seen for its user, also earlier in this fold. A Segment messageId counts once across
all accounts (a claim on the {ingest} tag, set before the accounts are folded); an `event_id`
once per account (its account's marks). The entries are acknowledged, and the user links their
group calls bring stored, once their accounts are written and marked dirty; a consumer that
dies in between leaves them pending, and the one that takes them over resolves them with the
same links and finds them recorded as folded in each account it wrote.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby

from integration.config.schema import Config
from integration.errors import PayloadError
from integration.jobs.fold_signals import SignalBuffer
from integration.signals.events import UsageEvent, parse_usage
from integration.signals.segment import SegmentBatch, parse_segment, resolve
from integration.store import folding, freshness, history, ingest_stream, keys, rollups
from integration.store.cluster import StateRedis
from integration.store.folding import Item, Lease
from integration.store.ingest_stream import Entry
from integration.store.unmatched import record_unmatched

logger = logging.getLogger(__name__)

UNREADABLE = "the body no longer parses in this release"


@dataclass(frozen=True, slots=True)
class Folded:
    """What one fold of a source's entries did: enough to queue the evaluation it asks for."""

    now: datetime
    entries: int
    events: int
    accounts: int


@dataclass(slots=True)
class _Parsed:
    entry: Entry
    usage: list[UsageEvent] | None = None
    segment: SegmentBatch | None = None


class _Holding:
    """The entries this consumer holds and its lease on them, renewed when an account script
    says it is over (then the entries another consumer took meanwhile are dropped)."""

    def __init__(self, redis: StateRedis, consumer: str, held: ingest_stream.Held) -> None:
        self.redis, self.consumer = redis, consumer
        self.ids, self.lease = set(held.ids), held.lease

    def renew(self) -> tuple[Lease, frozenset[str]]:
        held = ingest_stream.hold(self.redis, self.consumer, sorted(self.ids))
        lost = frozenset(self.ids - held.ids)
        self.ids, self.lease = set(held.ids), held.lease
        return held.lease, lost


def fold_entries(
    redis: StateRedis,
    entries: Sequence[Entry],
    consumer: str,
    config: Config,
    signals: SignalBuffer | None = None,
) -> list[Folded]:
    """Fold entries this consumer holds; unreadable ones are set aside (dead letters); ones
    another consumer took over meanwhile are left to it. Each account's signal goes to the
    audit trail through `signals` (at once without one)."""
    signals = signals or SignalBuffer(config.history, every_seconds=0)
    held = ingest_stream.hold(redis, consumer, [entry.id for entry in entries])
    if held.layout != rollups.LAYOUT:
        ingest_stream.copy_layout(redis)  # refuses while the rollups are in another layout
    holding = _Holding(redis, consumer, held)
    parsed, unreadable = _parse_all([e for e in entries if e.id in held.ids], config)
    if unreadable:
        logger.error("ingest entries set aside", extra={"entries": [e.id for e in unreadable]})
        ingest_stream.set_aside(redis, unreadable, UNREADABLE)
    folds = []
    for _, part in groupby(parsed, key=_part_key):
        its = [p for p in part if p.entry.id in holding.ids]
        if not its:
            continue
        now = datetime.fromtimestamp(max(p.entry.accepted_at for p in its), UTC)
        source = its[0].entry.source
        usage = source == freshness.USAGE
        items, links = (_usage_items(its), []) if usage else _segment_items(redis, its, now)
        ttl = rollups.EVENT_DEDUPE_SECONDS if usage else rollups.MESSAGE_DEDUPE_SECONDS
        outcome = folding.fold_items(
            redis, items, config.metrics, now, source, ttl, holding.lease, holding.renew
        )
        signals.add(redis, _received(outcome, source, now))
        ingest_stream.acknowledge(redis, consumer, [p.entry.id for p in its], links)
        folds.append(Folded(now, len(its), outcome.events, len(outcome.accounts)))
    return folds


def _received(outcome: folding.Outcome, source: str, now: datetime) -> list[history.Received]:
    """Each account's signal for the trail: its events and deliveries (stream ids)."""
    return [
        history.Received(
            account, source, now, events, sorted(entries, key=ingest_stream.stream_order)
        )
        for account, (events, entries) in outcome.received.items()
    ]


def _part_key(parsed: _Parsed) -> tuple[str, int]:
    """Entries folded in one call: same source (watermark), same accepting day (yesterday)."""
    return parsed.entry.source, int(parsed.entry.accepted_at // 86400)


def _parse_all(entries: Sequence[Entry], config: Config) -> tuple[list[_Parsed], list[Entry]]:
    parsed, unreadable = [], []
    account_path = config.webhooks.segment.account_path if config.webhooks.segment else ""
    ordered = sorted(entries, key=lambda e: (e.source, ingest_stream.stream_order(e.id)))
    for entry in ordered:
        now = datetime.fromtimestamp(entry.accepted_at, UTC)
        try:
            body = json.loads(entry.body)
            if entry.source == freshness.USAGE:
                parsed.append(_Parsed(entry, usage=parse_usage(body, now, sys.maxsize)))
            elif entry.source == freshness.SEGMENT:
                parsed.append(_Parsed(entry, segment=parse_segment(body, now, account_path)))
            else:
                unreadable.append(entry)
        except (ValueError, PayloadError):
            unreadable.append(entry)
    return parsed, unreadable


def _usage_items(held: list[_Parsed]) -> list[Item]:
    """The events to fold, in stream order; an event id seen before in this fold drops its
    event (one stored before is dropped by its account's script)."""
    items, seen = [], set()
    for parsed in held:
        for event in parsed.usage or ():
            mark = usage_mark(event) if event.event_id else None
            if mark is not None:
                if (event.account_id, mark) in seen:
                    continue
                seen.add((event.account_id, mark))
            items.append(Item(event, parsed.entry.id, mark))
    return items


def usage_mark(event: UsageEvent) -> str:
    """The event's mark, among its account's marks (two accounts may number events alike)."""
    return keys.message_mark(freshness.USAGE, event.event_id or "")


def _segment_items(
    redis: StateRedis, held: list[_Parsed], now: datetime
) -> tuple[list[Item], list[tuple[str, list[str]]]]:
    """Each delivery resolved as its own request would have been, in stream order: with the
    links known before it and its own; and the links each entry brings, which the
    acknowledgement stores (stored before the fold, they would re-route the tracks of an entry
    folded again after its consumer died). A messageId is claimed across all accounts before
    they are folded: one claimed by another entry (or the release before) is dropped, one
    claimed by the same entry is a fold again, and the accounts' record of folded entries
    keeps it from counting twice. Deliveries holding events without an account are recorded
    as unmatched (a retry after its group call is still counted)."""
    batches = [p.segment for p in held if p.segment is not None]
    known = _known_groups(redis, batches)
    resolved_items: list[tuple[str, Item]] = []
    links: list[tuple[str, list[str]]] = []
    seen: set[str] = set()
    running = dict(known)
    for parsed in held:
        batch = parsed.segment or SegmentBatch()
        if batch.links:
            links.append((parsed.entry.id, [part for link in batch.links.items() for part in link]))
        batch = batch.without({e.message_id for e in batch.events if e.message_id in seen})
        linked = {**running, **batch.links}
        attributed = [
            e for e in batch.events if e.account_id or linked.get(e.user_id) or e.property_account
        ]
        resolved, missing = resolve(batch, running)
        running.update(batch.links)
        if missing:
            record_unmatched(redis, "segment", "events without an account", batch.dedupe_id, now)
        for message, event in zip(attributed, resolved, strict=True):
            seen.add(message.message_id)
            resolved_items.append((message.message_id, Item(event, parsed.entry.id)))
    claims = [(message, item.entry) for message, item in resolved_items]
    duplicates = ingest_stream.claim_messages(redis, claims, rollups.MESSAGE_DEDUPE_SECONDS)
    items = [item for message, item in resolved_items if message not in duplicates]
    return items, links


def _known_groups(redis: StateRedis, batches: Sequence[SegmentBatch]) -> dict[str, str]:
    """The stored account of each user whose tracks carry none (a round trip only if any)."""
    unknown = sorted({e.user_id for b in batches for e in b.events if not e.account_id})
    if not unknown:
        return {}
    found = redis.hmget(keys.segment_user_groups(), unknown)
    return {user: keys.text(group) for user, group in zip(unknown, found, strict=True) if group}
