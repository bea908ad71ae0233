"""POST /webhooks/usage: product usage events, folded into rollups in one Redis round trip."""

from __future__ import annotations

import json
from collections.abc import Sequence
from datetime import datetime

from flask import Blueprint, Response, jsonify

from integration.signals.events import UsageEvent, parse_usage
from integration.store import freshness, keys, rollups
from webhooks import edge
from webhooks.edge import config, signed_json

bp = Blueprint("usage", __name__)


@bp.post("/webhooks/usage")
def receive_usage() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, body = signed_json(settings.usage.secret_env)
    now = edge.now()
    events = parse_usage(body, now, settings.max_events_per_request)
    folded, stored = _fold(keys.delivery_seen("usage", delivery_id), events, now)
    edge.queue_evaluation(folded, now)
    if folded.duplicate:
        return jsonify(status="duplicate", delivery_id=delivery_id), 200
    answer = {"status": "accepted", "events": len(stored)}
    answer["accounts"] = len({event.account_id for event in stored})
    if len(stored) < len(events):
        answer["duplicate_events"] = len(events) - len(stored)
    return jsonify(answer), 202


def _fold(
    delivery_key: str, events: Sequence[UsageEvent], now: datetime
) -> tuple[rollups.FoldResult, Sequence[UsageEvent]]:
    """One round trip, unless events carrying an `event_id` were stored by an earlier delivery:
    the fold then writes nothing and names them, and the rest is folded again (each pass has
    fewer events, so this ends)."""
    while True:
        marks = [_mark(event) for event in events if event.event_id]
        folded = edge.fold_usage(
            events, delivery_key, now, freshness.USAGE, marks, rollups.EVENT_DEDUPE_SECONDS
        )
        if not folded.messages_taken:
            return folded, events
        events = [e for e in events if not e.event_id or _mark(e) not in folded.taken]


def _mark(event: UsageEvent) -> str:
    """The event's mark: its id within its account (two accounts may number events alike)."""
    return keys.message_seen("usage", json.dumps([event.account_id, event.event_id]))
