"""One fold of ingest stream entries: parse the accepted bodies again, merge, fold, acknowledge.

Entries of one source accepted on the same day are folded in one fold_usage.lua call, so the
events of an account-day are merged across deliveries (a hundred single-event deliveries of one
account become one group). What a delivery's own request used to decide at accept time is
decided here, in stream order, exactly as consecutive requests decided it: an `event_id` or a
Segment messageId stored before (or earlier in the same fold) counts once, and a Segment track
is tied to its account by the last group call seen for its user, also earlier in this fold.
"""

from __future__ import annotations

import json
import logging
import sys
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from datetime import UTC, datetime
from itertools import groupby

from redis import Redis

from integration.config.schema import Config
from integration.errors import PayloadError
from integration.signals.events import UsageEvent, parse_usage
from integration.signals.segment import SegmentBatch, parse_segment, resolve
from integration.store import freshness, ingest_stream, keys, rollups
from integration.store.ingest_stream import Entry
from integration.store.unmatched import record_unmatched

logger = logging.getLogger(__name__)

# The evaluation job keys to look for at a time: this interval's and the next one's.
JobKeys = Callable[[datetime], tuple[str, str]]
UNREADABLE = "the body no longer parses in this release"


@dataclass(frozen=True, slots=True)
class Folded:
    """What one fold call did: enough for the caller to queue the evaluation it asks for."""

    now: datetime
    result: rollups.FoldResult
    entries: int
    events: int


@dataclass(slots=True)
class _Parsed:
    entry: Entry
    usage: list[UsageEvent] | None = None
    segment: SegmentBatch | None = None


def fold_entries(
    redis: Redis, entries: Sequence[Entry], consumer: str, config: Config, job_keys: JobKeys
) -> list[Folded]:
    """Fold entries this consumer holds; unreadable ones are set aside (dead letters)."""
    parsed, unreadable = _parse_all(entries, config)
    if unreadable:
        logger.error("ingest entries set aside", extra={"entries": [e.id for e in unreadable]})
        ingest_stream.set_aside(redis, unreadable, UNREADABLE)
    folds = []
    for _, part in groupby(parsed, key=_part_key):
        held = list(part)
        folded = (
            _fold_usage(redis, held, consumer, config, job_keys)
            if held[0].entry.source == freshness.USAGE
            else _fold_segment(redis, held, consumer, config, job_keys)
        )
        if folded is not None:
            folds.append(folded)
    return folds


def _part_key(parsed: _Parsed) -> tuple[str, int]:
    """Entries folded in one call: same source (watermark), same accepting day (yesterday)."""
    return parsed.entry.source, int(parsed.entry.accepted_at // 86400)


def _parse_all(entries: Sequence[Entry], config: Config) -> tuple[list[_Parsed], list[Entry]]:
    parsed, unreadable = [], []
    account_path = config.webhooks.segment.account_path if config.webhooks.segment else ""
    ordered = sorted(entries, key=lambda e: (e.source, _stream_order(e.id)))
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


def _stream_order(entry_id: str) -> tuple[int, int]:
    millis, _, sequence = entry_id.partition("-")
    return int(millis), int(sequence or 0)


def _fold_usage(
    redis: Redis, held: list[_Parsed], consumer: str, config: Config, job_keys: JobKeys
) -> Folded | None:
    taken: set[str] = set()
    while held:
        events, marks = _usage_events(held, taken)
        result, now = _fold(redis, held, events, marks, consumer, config, job_keys)
        if result.entries_lost:
            held = [p for p in held if p.entry.id not in result.taken]
        elif result.messages_taken:
            taken |= result.taken
        else:
            return Folded(now, result, len(held), len(events))
    return None


def _usage_events(held: list[_Parsed], taken: set[str]) -> tuple[list[UsageEvent], list[str]]:
    """The events to fold, in stream order; an event id seen before in this fold or stored
    before (`taken`) drops its event."""
    events, marks, seen = [], [], set(taken)
    for parsed in held:
        for event in parsed.usage or ():
            if event.event_id:
                mark = usage_mark(event)
                if mark in seen:
                    continue
                seen.add(mark)
                marks.append(mark)
            events.append(event)
    return events, marks


def usage_mark(event: UsageEvent) -> str:
    """The event's mark: its id within its account (two accounts may number events alike)."""
    return keys.message_seen("usage", json.dumps([event.account_id, event.event_id]))


def _fold_segment(
    redis: Redis, held: list[_Parsed], consumer: str, config: Config, job_keys: JobKeys
) -> Folded | None:
    batches = [p.segment for p in held if p.segment is not None]
    known = _known_groups(redis, batches)
    links = [part for batch in batches for link in batch.links.items() for part in link]
    if links:  # a group call's link stands whether or not its usage is folded yet
        redis.hset(keys.segment_user_groups(), items=links)
    taken: set[str] = set()
    while held:
        events, marks, unattributed = _segment_events(held, known, taken)
        result, now = _fold(redis, held, events, marks, consumer, config, job_keys)
        if result.entries_lost:
            held = [p for p in held if p.entry.id not in result.taken]
        elif result.messages_taken:
            taken |= result.taken
        else:
            for dedupe_id in unattributed:
                record_unmatched(redis, "segment", "events without an account", dedupe_id, now)
            return Folded(now, result, len(held), len(events))
    return None


def _segment_events(
    held: list[_Parsed], known: dict[str, str], taken: set[str]
) -> tuple[list[UsageEvent], list[str], list[str]]:
    """Each delivery resolved as its own request would have been, in stream order: with the
    links known before it and its own. A delivery whose messages all lack an account marks
    none of them (a retry after its group call is still counted). Also returns the deliveries
    that held events without an account."""
    events, marks, unattributed, seen = [], [], [], set(taken)
    running = dict(known)
    for parsed in held:
        batch = parsed.segment or SegmentBatch()
        ids = {e.message_id for e in batch.events if segment_mark(e.message_id) in seen}
        batch = batch.without(ids)
        resolved, missing = resolve(batch, running)
        running.update(batch.links)
        if missing:
            unattributed.append(batch.dedupe_id)
        if resolved:
            events += resolved
            own = [segment_mark(e.message_id) for e in batch.events]
            marks += own
            seen.update(own)
    return events, marks, unattributed


def segment_mark(message_id: str) -> str:
    return keys.message_seen("segment", message_id)


def _known_groups(redis: Redis, batches: Sequence[SegmentBatch]) -> dict[str, str]:
    """The stored account of each user whose tracks carry none (a round trip only if any)."""
    unknown = sorted({e.user_id for b in batches for e in b.events if not e.account_id})
    if not unknown:
        return {}
    found = redis.hmget(keys.segment_user_groups(), unknown)
    return {user: keys.text(group) for user, group in zip(unknown, found, strict=True) if group}


def _fold(
    redis: Redis,
    held: list[_Parsed],
    events: list[UsageEvent],
    marks: list[str],
    consumer: str,
    config: Config,
    job_keys: JobKeys,
) -> tuple[rollups.FoldResult, datetime]:
    """One fold_usage.lua call for the held entries, at the time the newest was accepted."""
    now = datetime.fromtimestamp(max(p.entry.accepted_at for p in held), UTC)
    job_key, next_job_key = job_keys(now)
    source = held[0].entry.source
    usage = source == freshness.USAGE
    result = rollups.fold_usage(
        redis,
        "-",
        events,
        job_key,
        config.metrics,
        marks,
        now,
        source,
        rollups.EVENT_DEDUPE_SECONDS if usage else rollups.MESSAGE_DEDUPE_SECONDS,
        next_job_key,
        rollups.StreamEntries([p.entry.id for p in held], consumer),
    )
    return result, now
