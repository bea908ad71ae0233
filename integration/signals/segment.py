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

from integration.signals.events import MAX_CLOCK_SKEW, MAX_EVENT_AGE, UsageEvent

IGNORED_TYPES = frozenset({"screen", "alias", "delete"})
USAGE_TYPES = frozenset({"track", "page", "identify", "group"})
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


def messages(body: Any) -> list[Any]:  # noqa: ANN401 - JSON of any shape
    """Object, bare array, or a Tracking API batch envelope (its context merged into each)."""
    if isinstance(body, list):
        return body
    if isinstance(body, dict) and isinstance(body.get("batch"), list):
        shared = body.get("context") or {}
        return [
            item
            if not isinstance(item, dict)
            else {**item, "context": {**shared, **(item.get("context") or {})}}
            for item in body["batch"]
        ]
    return [body]


def parse_segment(body: Any, now: datetime, account_path: str) -> SegmentBatch:  # noqa: ANN401
    """Usage events and group links from a delivery; bad messages are counted, never fatal."""
    batch = SegmentBatch()
    message_ids: set[str] = set()
    for message in messages(body):
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
        user = message.get("userId") or message.get("anonymousId")
        occurred = lenient_timestamp(message.get("timestamp"))
        if (
            not user
            or occurred is None
            or not now - MAX_EVENT_AGE <= occurred <= now + MAX_CLOCK_SKEW
        ):
            batch.skip("no user or usable timestamp")
            continue
        message_id = str(message.get("messageId") or f"{user}:{occurred.isoformat()}:{kind}")
        if message_id in message_ids:
            batch.skip("repeated messageId")
            continue
        message_ids.add(message_id)
        account = _account(message, kind, account_path)
        if kind == "group" and account:
            batch.links[str(user)] = account
        batch.events.append(
            SegmentEvent(
                message_id=message_id,
                user_id=str(user),
                name=_event_name(message, kind),
                occurred_at=occurred,
                account_id=account,
                seats=_seats(message, kind),
                properties=message.get("properties") or {},
                property_account=_property_account(message, account_path),
            )
        )
    return batch


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


def _account(message: dict[str, Any], kind: str, account_path: str) -> str | None:
    if kind == "group" and message.get("groupId"):
        return str(message["groupId"])
    context = message.get("context") or {}
    if context.get("groupId"):
        return str(context["groupId"])
    for source in (message.get("traits"), context.get("traits")):
        value = _dig(source, account_path)
        if value not in (None, ""):
            return str(value)
    return None


def _property_account(message: dict[str, Any], account_path: str) -> str | None:
    """A track's properties may name the company the user looked at, not the user's own: this
    is used only when the user has no group yet."""
    value = _dig(message.get("properties"), account_path)
    return str(value) if value not in (None, "") else None


def _dig(source: Any, path: str) -> Any:  # noqa: ANN401 - JSON of any shape
    for part in path.split("."):
        if not isinstance(source, dict):
            return None
        source = source.get(part)
    return source


def _event_name(message: dict[str, Any], kind: str) -> str:
    if kind == "track":
        return str(message.get("event") or "track")
    return kind


def _seats(message: dict[str, Any], kind: str) -> int | None:
    if kind != "group":
        return None
    value = (message.get("traits") or {}).get("seats")
    return int(value) if isinstance(value, int | float) and value >= 0 else None


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
    except ValueError:
        return None
    return parsed.astimezone(UTC) if parsed.tzinfo else parsed.replace(tzinfo=UTC)
