"""POST /webhooks/usage: product usage events, accepted durably in one Redis round trip.

The request does only what durability needs: verify, validate, then one script that marks the
delivery id and appends the body to the ingest stream. `integration fold` folds it into the
rollups moments later (integration/jobs/fold.py), where an `event_id` stored before is dropped.
"""

from __future__ import annotations

from flask import Blueprint, Response, jsonify

from integration.signals.events import count_usage
from integration.store import freshness, ingest_stream, keys
from webhooks import edge
from webhooks.edge import config, signed_text

bp = Blueprint("usage", __name__)


@bp.post("/webhooks/usage")
def receive_usage() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, text, body = signed_text(settings.usage.secret_env, scan_depth=False)
    now = edge.now()
    events, accounts = count_usage(body, now, settings.max_events_per_request)
    delivery_key = keys.delivery_seen("usage", delivery_id)
    if not ingest_stream.accept(edge.redis(), freshness.USAGE, delivery_key, text, now):
        return jsonify(status="duplicate", delivery_id=delivery_id), 200
    return jsonify(status="accepted", events=events, accounts=accounts), 202
