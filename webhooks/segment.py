"""POST /webhooks/segment: Segment's Webhooks destination (classic or Actions, batched or not).

Segment signs with X-Signature, HMAC-SHA1 hex of the body; a batched Actions delivery (a bare
array) signs only its first element (reference/segment.md 4.3), so that element's raw bytes are
checked, never a re-serialisation; finding them is the only parsing done before the check, and
it runs only on a body whose nesting was bounded first (webhooks/json_body.py).

A track without context.groupId is tied to its account by the last group call seen for the
same user.
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging
from datetime import datetime

from flask import Blueprint, Response, jsonify, request
from redis import Redis

from integration.errors import SignatureError
from integration.signals.events import UsageEvent
from integration.signals.segment import SegmentBatch, parse_segment, resolve
from integration.store import freshness, keys, rollups
from integration.store.unmatched import record_unmatched
from webhooks import edge, json_body
from webhooks.edge import body_text, config, parse_json, redis

logger = logging.getLogger(__name__)
bp = Blueprint("segment", __name__)
SOURCE = "segment"


def signed_bytes(text: str) -> str:
    """What Segment signed: the whole body, or the first element of a bare array."""
    stripped = text.lstrip()
    if not stripped.startswith("["):
        return text
    start = len(text) - len(stripped) + 1
    while start < len(text) and text[start].isspace():
        start += 1
    try:
        _, end = json.JSONDecoder().raw_decode(text, start)
    except ValueError:
        return text
    return text[start:end]


def verify_segment(secret: str, text: str, signature: str | None) -> None:
    if not signature:
        msg = "missing header X-Signature (a shared secret is configured)"
        raise SignatureError(msg)
    expected = hmac.new(secret.encode(), signed_bytes(text).encode(), hashlib.sha1).hexdigest()
    if not hmac.compare_digest(expected.encode(), signature.strip().lower().encode()):
        msg = "X-Signature does not match (HMAC-SHA1 of the body, or of a batch's first event)"
        raise SignatureError(msg)


@bp.post("/webhooks/segment")
def receive_segment() -> tuple[Response, int]:
    settings = config().webhooks.segment
    if settings is None:
        return jsonify(error="not_configured", message="webhooks.segment is not configured"), 404
    text = body_text()
    # Finding a batch's first element for the signature is a parse: bound its depth first.
    json_body.check_depth(text, SOURCE)
    if settings.shared_secret_env:
        verify_segment(
            config().secret(settings.shared_secret_env), text, request.headers.get("X-Signature")
        )
    now = edge.now()
    batch = parse_segment(parse_json(text), now, settings.account_path)
    store = redis()
    known = _known_groups(store, batch)
    # The fold refuses a batch holding messages stored before (a retry, or a message re-sent in
    # a batch made up differently) and names them; each pass drops those, so it ends.
    for _ in range(len(batch.events) + 1):
        events, unattributed = resolve(batch, known)
        folded = _fold(store, batch, events, now) if events else None
        if folded is None or not folded.messages_taken:
            break
        batch = batch.without(
            {e.message_id for e in batch.events if _mark(e.message_id) in folded.taken}
        )
    if batch.links:
        pairs = [part for link in batch.links.items() for part in link]
        store.hset(keys.segment_user_groups(), items=pairs)
    if unattributed:
        record_unmatched(store, "segment", "events without an account", batch.dedupe_id, now)
    if folded is not None:
        edge.queue_evaluation(folded, now)
    return jsonify(
        status="accepted", events=len(events), unattributed=unattributed, skipped=batch.skipped
    ), 202


def _fold(
    store: Redis, batch: SegmentBatch, events: list[UsageEvent], now: datetime
) -> rollups.FoldResult:
    delivery = keys.delivery_seen("segment", batch.dedupe_id)
    marks = [_mark(event.message_id) for event in batch.events]
    return edge.fold_usage(events, delivery, now, freshness.SEGMENT, marks)


def _mark(message_id: str) -> str:
    return keys.message_seen("segment", message_id)


def _known_groups(store: Redis, batch: SegmentBatch) -> dict[str, str]:
    """The account of each user whose tracks carry none: the last group call seen for them
    (a round trip only when there are such users)."""
    unknown = sorted({e.user_id for e in batch.events if not e.account_id} - set(batch.links))
    if not unknown:
        return {}
    found = store.hmget(keys.segment_user_groups(), unknown)
    return {user: keys.text(group) for user, group in zip(unknown, found, strict=True) if group}
