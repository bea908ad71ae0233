"""Segment messages (reference/segment.md) turned into our usage events and account links.

Segment delivers one message (classic webhooks), a bare array (Actions batching) or, when a
library posts to us directly, a `{"batch": [...]}` envelope. The account comes from
`context.groupId`, else a configured property or trait path, else a `group` call seen earlier
for the same user (the caller resolves that link, which needs Redis).
"""

from __future__ import annotations

import hashlib
import re
from collections.abc import Mapping, Set
from dataclasses import dataclass, field
from datetime import UTC, datetime
from typing import Any

from integration.signals import segment_shape as shape
from integration.signals.events import MAX_CLOCK_SKEW, MAX_EVENT_AGE, UsageEvent
from integration.signals.segment_shape import object_field as _object

IGNORED_TYPES = frozenset({"screen", "alias", "delete"})
USAGE_TYPES = frozenset({"track", "page", "identify", "group"})
MAX_SEATS = 10_000_000  # as usage events' `seats`
_LOOSE_DATE = re.compile(r"^(\d{4})-(\d{1,2})-(\d{1,2})(T.*)?$")


@dataclass(frozen=True, slots=True)
class SegmentEvent:
    """A usage event whose account may still need the user -> group link."""

    message_id: str
    user_id: str
    name: str
    occurred_at: datetime
    account_id: str | None
    seats: int | None = None
    properties: Mapping[str, Any] = field(default_factory=dict)
    property_account: str | None = None


@dataclass
class SegmentBatch:
    events: list[SegmentEvent] = field(default_factory=list)
    links: dict[str, str] = field(default_factory=dict)  # user id -> group id, from group calls
    skipped: dict[str, int] = field(default_factory=dict)  # reason -> count

    def skip(self, reason: str) -> None:
        self.skipped[reason] = self.skipped.get(reason, 0) + 1

    @property
    def dedupe_id(self) -> str:
        """One id for the delivery: its messageIds, so a retried delivery is recognised."""
        joined = "\x00".join(sorted(event.message_id for event in self.events))
        return hashlib.sha256(joined.encode()).hexdigest()[:40]

    def without(self, taken: Set[str]) -> SegmentBatch:
        """The batch less messages already stored: Segment may re-send a message in a batch
        made up differently, so a whole-delivery id alone would count it twice."""
        kept = [event for event in self.events if event.message_id not in taken]
        skipped = dict(self.skipped)
        if len(kept) < len(self.events):
            reason = "messageId already taken"
            skipped[reason] = skipped.get(reason, 0) + len(self.events) - len(kept)
        return SegmentBatch(kept, self.links, skipped)


def messages(body: Any) -> list[tuple[str, Any]]:  # noqa: ANN401 - JSON of any shape
    """Each message with its path in the body: an object, a bare array, or a Tracking API batch
    envelope (whose context is merged into each message's)."""
    if isinstance(body, list):
        return [(f"[{index}]", item) for index, item in enumerate(body)]
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        shared = _object(body, "context", "")
        found = []
        for index, item in enumerate(body["batch"]):
            prefix = f"batch[{index}]"
            if isinstance(item, dict):
                item = {**item, "context": {**shared, **_object(item, "context", prefix)}}
            found.append((prefix, item))
        return found
    return [("", body)]


def parse_segment(body: Any, now: datetime, account_path: str) -> SegmentBatch:  # noqa: ANN401
    """Usage events and group links from a delivery. Messages we cannot use (ignored types, no
    user or timestamp) are counted; a malformed one (a context that is no object, an account id
    that is no printable string) raises PayloadError, so nothing of the delivery is stored."""
    batch = SegmentBatch()
    message_ids: set[str] = set()
    for prefix, message in messages(body):
        if not isinstance(message, dict):
            batch.skip("not an object")
            continue
        kind = str(message.get("type", ""))
        if kind in IGNORED_TYPES:
            batch.skip(f"type {kind}")
            continue
        if kind not in USAGE_TYPES:
            batch.skip("unknown type")
            continue
        event = _event(message, kind, prefix, now, account_path)
        if event is None:
            batch.skip("no user or usable timestamp")
            continue
        if event.message_id in message_ids:
            batch.skip("repeated messageId")
            continue
        message_ids.add(event.message_id)
        if kind == "group" and event.account_id:
            batch.links[event.user_id] = event.account_id
        batch.events.append(event)
    return batch


def _event(
    message: dict[str, Any], kind: str, prefix: str, now: datetime, account_path: str
) -> SegmentEvent | None:
    """The message as a usage event, None when it names no user or no usable moment."""
    shape.check_message(message, prefix)
    user = message.get("userId") or message.get("anonymousId")
    occurred = lenient_timestamp(message.get("timestamp"))
    if not user or occurred is None or not now - MAX_EVENT_AGE <= occurred <= now + MAX_CLOCK_SKEW:
        return None
    message_id = message.get("messageId") or f"{user}:{occurred.isoformat()}:{kind}"
    return SegmentEvent(
        message_id=message_id,
        user_id=str(user),
        name=(message.get("event") or "track") if kind == "track" else kind,
        occurred_at=occurred,
        account_id=shape.account(message, kind, account_path, prefix),
        seats=_seats(message, kind),
        properties=message.get("properties") or {},
        property_account=shape.path_account(message, "properties", account_path, prefix),
    )


def resolve(batch: SegmentBatch, known_links: Mapping[str, str]) -> tuple[list[UsageEvent], int]:
    """Usage events with an account; and how many had none (no groupId, no group call yet)."""
    links = {**known_links, **batch.links}
    resolved, missing = [], 0
    for event in batch.events:
        account = event.account_id or links.get(event.user_id) or event.property_account
        if account is None:
            missing += 1
            continue
        resolved.append(
            UsageEvent(
                account, event.user_id, event.name, event.occurred_at, event.seats, event.properties
            )
        )
    return resolved, missing


def _seats(message: dict[str, Any], kind: str) -> int | None:
    if kind != "group":
        return None
    value = (message.get("traits") or {}).get("seats")
    if isinstance(value, bool) or not isinstance(value, int | float):
        return None
    return int(value) if 0 <= value <= MAX_SEATS else None  # JSON allows 1e400 (inf)


def lenient_timestamp(value: Any) -> datetime | None:  # noqa: ANN401 - whatever was sent
    """ISO-8601, also with `+00:00` and the unpadded dates Segment's own docs show."""
    if not isinstance(value, str):
        return None
    text = value.strip().replace("Z", "+00:00")
    loose = _LOOSE_DATE.match(text)
    if loose:
        year, month, day, rest = loose.groups()
        text = f"{year}-{int(month):02d}-{int(day):02d}{rest or ''}"
    try:
        parsed = datetime.fromisoformat(text)
        return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
    except (ValueError, OverflowError):  # not a date, or year 1 at +01:00 leaving the calendar
        return None
