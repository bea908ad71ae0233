"""POST /webhooks/segment: Segment's Webhooks destination (classic or Actions, batched or not).

Segment signs with X-Signature, HMAC-SHA1 hex of the body; a batched Actions delivery (a bare
array) signs only its first element (reference/segment.md 4.3), so that element's raw bytes are
checked, never a re-serialisation; finding them is the only parsing done before the check, and
it runs only on a body whose nesting was bounded first (webhooks/json_body.py).

The request only accepts (verify, validate, one round trip: integration/store/ingest_stream.py);
`integration fold` folds the delivery moments later, and decides there what the request no
longer knows: a messageId stored before counts once, and a track without context.groupId is tied
to its account by the last group call seen for the same user (integration/jobs/fold_batch.py).
"""

from __future__ import annotations

import hashlib
import hmac
import json
import logging

from flask import Blueprint, Response, jsonify, request

from integration.errors import SignatureError
from integration.signals.segment import parse_segment
from integration.store import freshness, ingest_stream, keys
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
    if batch.events:
        delivery = keys.delivery_seen(SOURCE, batch.dedupe_id)
        if not ingest_stream.accept(redis(), freshness.SEGMENT, delivery, text, now):
            return jsonify(status="duplicate", delivery_id=batch.dedupe_id), 200
    return jsonify(status="accepted", events=len(batch.events), skipped=batch.skipped), 202
