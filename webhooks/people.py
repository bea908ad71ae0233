"""POST /webhooks/job-changes: people signals, one RQ job each (they are few)."""

from __future__ import annotations

from datetime import UTC, datetime

from flask import Blueprint, Response, jsonify

from integration.jobs.queues import enqueue_job_change
from integration.signals.events import parse_job_changes
from webhooks.clients import queue_redis
from webhooks.edge import config, signed_json

bp = Blueprint("job_changes", __name__)


@bp.post("/webhooks/job-changes")
def receive_job_changes() -> tuple[Response, int]:
    settings = config().webhooks
    delivery_id, body = signed_json(settings.job_changes.secret_env)
    changes = parse_job_changes(body, datetime.now(UTC), settings.max_events_per_request)
    queued = sum(enqueue_job_change(queue_redis(), change) for change in changes)
    if not queued:
        return jsonify(status="duplicate", delivery_id=delivery_id), 200
    return jsonify(status="accepted", queued=queued, duplicates=len(changes) - queued), 202
