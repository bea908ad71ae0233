"""POST /webhooks/usage: product usage events, folded into rollups in one Redis round trip."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import datetime

from flask import Blueprint, Response, jsonify
from redis.exceptions import RedisError

from integration.jobs.queues import enqueue_dirty_evaluation, evaluation_job_key
from integration.signals.events import UsageEvent, parse_usage
from integration.store import freshness, keys, rollups
from webhooks import edge
from webhooks.edge import config, redis, signed_json

logger = logging.getLogger(__name__)
bp = Blueprint("usage", __name__)


@bp.post("/webhooks/usage")
def receive_usage() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, body = signed_json(settings.usage.secret_env)
    now = edge.now()
    events = parse_usage(body, now, settings.max_events_per_request)
    folded, stored = _fold(keys.delivery_seen("usage", delivery_id), events, now)
    if folded.needs_evaluation_job:
        try:
            enqueue_dirty_evaluation(redis(), now, config().evaluation.interval_seconds)
        except RedisError:
            # The usage is stored and its accounts are marked dirty: the next delivery, or the
            # sweep in integration/jobs/cron.py, queues the evaluation. The sender need not retry.
            logger.warning("evaluation not queued; the next delivery or the sweep will")
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
    job_key = evaluation_job_key(now, config().evaluation.interval_seconds)
    while True:
        marks = [keys.message_seen("usage", e.event_id) for e in events if e.event_id]
        folded = rollups.fold_usage(
            redis(),
            delivery_key,
            events,
            job_key,
            config().metrics,
            marks,
            now,
            freshness.USAGE,
            rollups.EVENT_DEDUPE_SECONDS,
        )
        if not folded.messages_taken:
            return folded, events
        events = [
            event
            for event in events
            if not event.event_id or keys.message_seen("usage", event.event_id) not in folded.taken
        ]
