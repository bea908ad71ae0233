"""POST /webhooks/usage: product usage events, folded into rollups in one Redis round trip."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from integration import keys, rollups
from integration.queues import enqueue_dirty_evaluation
from integration.signals import parse_usage
from webhooks.edge import config, redis, signed_json

logger = logging.getLogger(__name__)
bp = Blueprint("usage", __name__)


@bp.post("/webhooks/usage")
def receive_usage() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, body = signed_json(settings.usage.secret_env)
    events = parse_usage(body, datetime.now(UTC), settings.max_events_per_request)
    folded = rollups.fold_usage(redis(), keys.delivery_seen("usage", delivery_id), events)
    if folded.duplicate:
        return jsonify(status="duplicate", delivery_id=delivery_id), 200
    if folded.dirty_was_empty:
        try:
            enqueue_dirty_evaluation(redis())
        except RedisError:
            # The usage is stored and its accounts are marked dirty; the periodic sweep
            # (integration/cron.py) evaluates them, so the sender need not retry.
            logger.warning("evaluation not queued; the sweep will pick the accounts up")
    accounts = len({event.account_id for event in events})
    return jsonify(status="accepted", events=len(events), accounts=accounts), 202
