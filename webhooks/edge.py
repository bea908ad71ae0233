"""What every signed JSON endpoint does before its own work: verify, parse, and answer errors."""

from __future__ import annotations

import logging
from datetime import UTC, datetime
from typing import Any

from flask import Flask, Response, current_app, jsonify, request
from redis import Redis
from redis.exceptions import RedisError

from integration.config.schema import Config
from integration.errors import PayloadError, SignatureError, StorageUnavailableError
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


def parse_json(text: str, scan_depth: bool = True) -> Any:  # noqa: ANN401 - JSON is any shape until validated
    """The body as JSON, depth-limited before any recursive parse (webhooks/json_body.py)."""
    return json_body.loads(text, request.blueprint or "webhook", scan_depth)


def signed_json(secret_env: str) -> tuple[str, Any]:
    """Verify the Standard Webhooks signature, then parse the body; return (delivery id, JSON)."""
    delivery_id, _, body = signed_text(secret_env)
    return delivery_id, body


def signed_text(secret_env: str, scan_depth: bool = True) -> tuple[str, str, Any]:
    """As signed_json, also returning the body's text (what the ingest stream stores)."""
    text = body_text()
    delivery_id = verify_standard_webhook(config().secret(secret_env), text, dict(request.headers))
    return delivery_id, text, parse_json(text, scan_depth)


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
