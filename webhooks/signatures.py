"""Standard Webhooks signature checks (https://www.standardwebhooks.com/).

The library raises ValueError or binascii.Error on malformed headers, which would be a 500; every
failure here becomes a SignatureError (401) that says which part was wrong.
"""

from __future__ import annotations

import binascii
import time
from collections.abc import Mapping
from functools import lru_cache

from standardwebhooks.webhooks import Webhook, WebhookVerificationError

from integration.errors import SignatureError

REQUIRED_HEADERS = ("webhook-id", "webhook-timestamp", "webhook-signature")
# Standard Webhooks: reject messages more than five minutes away from our clock.
TOLERANCE_SECONDS = 5 * 60


def verify_standard_webhook(secret: str, body: str, headers: Mapping[str, str]) -> str:
    """Check the signature and timestamp (5 minutes either way); return the delivery id."""
    lowered = {name.lower(): value for name, value in headers.items()}
    missing = [name for name in REQUIRED_HEADERS if not lowered.get(name)]
    if missing:
        msg = f"missing header {', '.join(missing)}"
        raise SignatureError(msg)
    _check_timestamp(lowered["webhook-timestamp"], time.time())
    try:
        _webhook(secret).verify(
            body, {name: lowered[name] for name in REQUIRED_HEADERS}, json_parse=False
        )
    except WebhookVerificationError as exc:
        msg = "webhook-signature does not match the body for any v1 signature"
        raise SignatureError(msg) from exc
    except (ValueError, binascii.Error) as exc:
        msg = "webhook-signature is malformed: expected 'v1,<base64>' entries separated by spaces"
        raise SignatureError(msg) from exc
    return lowered["webhook-id"]


@lru_cache(maxsize=16)
def _webhook(secret: str) -> Webhook:
    """One verifier per secret: building one decodes the secret, on every request otherwise."""
    return Webhook(secret)


def _check_timestamp(header: str, now: float) -> None:
    """Our own check first, so the sender learns which of the two timestamp problems it has."""
    try:
        sent = float(header)
    except ValueError as exc:
        msg = f"webhook-timestamp must be Unix seconds, got {header[:40]!r}"
        raise SignatureError(msg) from exc
    if abs(now - sent) > TOLERANCE_SECONDS:
        direction = "behind" if sent < now else "ahead of"
        msg = f"webhook-timestamp is more than {TOLERANCE_SECONDS}s {direction} our clock"
        raise SignatureError(msg)
