"""POST /webhooks/usage: product usage events, folded into rollups in one Redis round trip."""

from __future__ import annotations

import logging
from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from integration.jobs.queues import enqueue_dirty_evaluation, evaluation_job_key
from integration.signals.events import parse_usage
from integration.store import keys, rollups
from webhooks.edge import config, redis, signed_json

logger = logging.getLogger(__name__)
bp = Blueprint("usage", __name__)


@bp.post("/webhooks/usage")
def receive_usage() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, body = signed_json(settings.usage.secret_env)
    now = datetime.now(UTC)
    events = parse_usage(body, now, settings.max_events_per_request)
    delivery_key = keys.delivery_seen("usage", delivery_id)
    folded = rollups.fold_usage(
        redis(), delivery_key, events, evaluation_job_key(now), config().metrics, now=now
    )
    if folded.needs_evaluation_job:
        try:
            enqueue_dirty_evaluation(redis(), now)
        except RedisError:
            # The usage is stored and its accounts are marked dirty: the next delivery, or the
            # sweep in integration/jobs/cron.py, queues the evaluation. The sender need not retry.
            logger.warning("evaluation not queued; the next delivery or the sweep will")
    if folded.duplicate:
        return jsonify(status="duplicate", delivery_id=delivery_id), 200
    accounts = len({event.account_id for event in events})
    return jsonify(status="accepted", events=len(events), accounts=accounts), 202
