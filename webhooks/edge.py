"""What every signed JSON endpoint does before its own work: verify, parse, and answer errors."""

from __future__ import annotations

import logging
from collections.abc import Sequence
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from redis import Redis
from redis.exceptions import RedisError

from integration.config.schema import Config
from integration.errors import PayloadError, SignatureError, StorageUnavailableError
from integration.jobs.queues import (
    enqueue_dirty_evaluation,
    evaluation_job_key,
    next_evaluation_job_key,
    next_interval,
)
from integration.signals.events import UsageEvent
from integration.store import rollups
from webhooks import json_body
from webhooks.signatures import verify_standard_webhook

logger = logging.getLogger(__name__)


def now() -> datetime:
    """The web app's clock: when a delivery arrived (tests move it instead of sleeping)."""
    return datetime.now(UTC)


def config() -> Config:
    return current_app.extensions["integration.config"]  # type: ignore[no-any-return]


def redis() -> Redis:
    return current_app.extensions["integration.redis"]  # type: ignore[no-any-return]


def body_text() -> str:
    """The raw body as text; signatures are computed over exactly these characters."""
    try:
        return request.get_data(cache=True).decode("utf-8")
    except UnicodeDecodeError as exc:
        msg = f"not UTF-8 text (byte {exc.start}); send JSON encoded as UTF-8"
        raise PayloadError(request.blueprint or "webhook", "(body)", msg) from exc


def parse_json(text: str) -> Any:  # noqa: ANN401 - JSON is any shape until validated
    """The body as JSON, depth-limited before any recursive parse (webhooks/json_body.py)."""
    return json_body.loads(text, request.blueprint or "webhook")


def signed_json(secret_env: str) -> tuple[str, Any]:
    """Verify the Standard Webhooks signature, then parse the body; return (delivery id, JSON)."""
    text = body_text()
    delivery_id = verify_standard_webhook(config().secret(secret_env), text, dict(request.headers))
    return delivery_id, parse_json(text)


def fold_usage(
    events: Sequence[UsageEvent],
    delivery_key: str,
    now: datetime,
    source: str,
    marks: Sequence[str] = (),
    mark_ttl_seconds: int = rollups.MESSAGE_DEDUPE_SECONDS,
) -> rollups.FoldResult:
    """The fold, told which evaluation jobs to look for (this interval's and the next)."""
    interval = config().evaluation.interval_seconds
    return rollups.fold_usage(
        redis(),
        delivery_key,
        events,
        evaluation_job_key(now, interval),
        config().metrics,
        marks,
        now,
        source,
        mark_ttl_seconds,
        next_evaluation_job_key(now, interval),
    )


def queue_evaluation(folded: rollups.FoldResult, now: datetime) -> None:
    """Queue the dirty-account evaluation the fold found missing: now, or at the start of the
    next interval when this interval's job exists but may have run before these accounts
    changed. So a job always follows a delivery, with or without the cron sweep."""
    if not (folded.needs_evaluation_job or folded.needs_next_evaluation_job):
        return
    interval = config().evaluation.interval_seconds
    at = None if folded.needs_evaluation_job else next_interval(now, interval)
    try:
        enqueue_dirty_evaluation(redis(), now, interval, at=at)
    except RedisError:
        # The usage is stored and its accounts are marked dirty: the next delivery, or the
        # sweep in integration/jobs/cron.py, queues the evaluation. The sender need not retry.
        logger.warning("evaluation not queued; the next delivery or the sweep will")


def register_error_handlers(app: Flask) -> None:
    app.register_error_handler(SignatureError, _signature_error)
    app.register_error_handler(PayloadError, _payload_error)
    app.register_error_handler(StorageUnavailableError, _storage_error)
    app.register_error_handler(RedisError, _storage_error)


def _signature_error(exc: SignatureError) -> tuple[Response, int]:
    logger.warning("webhook signature rejected", extra={"path": request.path, "why": str(exc)})
    return jsonify(error="invalid_signature", message=str(exc)), 401


def _payload_error(exc: PayloadError) -> tuple[Response, int]:
    return jsonify(error="invalid_payload", field=exc.field, message=exc.message), 400


def _storage_error(exc: Exception) -> tuple[Response, int]:
    logger.error(
        "could not store webhook; sender will retry",
        extra={"path": request.path, "error": type(exc).__name__},
    )
    message = "signal storage is unavailable; nothing was accepted, please retry"
    return jsonify(error="unavailable", message=message), 503
