"""HubSpot's webhook signatures (reference/hubspot.md 1.2).

v3: base64 HMAC-SHA256, keyed with the app's client secret, of method + URI + body + timestamp,
where URI is the full URL HubSpot called with a few percent-escapes decoded, and the timestamp
(milliseconds) is at most 5 minutes old. v1 and v2 (hex SHA-256 of secret + body, and of
secret + method + URI + body) are accepted only when the admin turns legacy signatures on.
Written here rather than with hubspot-api-client's helper: the web edge does not import CRM SDKs,
and that helper lets a timestamp from the future pass.
"""

from __future__ import annotations

import base64
import hashlib
import hmac
from collections.abc import Mapping

from integration.errors import SignatureError

TOLERANCE_MS = 5 * 60 * 1000
# The only escapes HubSpot decodes in the URI before signing it.
_DECODED = {
    "%3A": ":",
    "%2F": "/",
    "%3F": "?",
    "%40": "@",
    "%21": "!",
    "%24": "$",
    "%27": "'",
    "%28": "(",
    "%29": ")",
    "%2A": "*",
    "%2C": ",",
    "%3B": ";",
}


def signed_uri(url: str) -> str:
    for escape, char in _DECODED.items():
        url = url.replace(escape, char).replace(escape.lower(), char)
    return url


def verify_hubspot(
    secret: str,
    method: str,
    url: str,
    body: str,
    headers: Mapping[str, str],
    now_ms: int,
    accept_legacy: bool,
) -> str:
    """Check the request came from HubSpot; return the version that matched."""
    lowered = {name.lower(): value for name, value in headers.items()}
    signature_v3 = lowered.get("x-hubspot-signature-v3")
    if signature_v3:
        _check_v3(
            secret,
            method,
            signed_uri(url),
            body,
            signature_v3,
            lowered.get("x-hubspot-request-timestamp", ""),
            now_ms,
        )
        return "v3"
    if accept_legacy and lowered.get("x-hubspot-signature"):
        version = lowered.get("x-hubspot-signature-version", "v1").lower()
        source = secret + body if version == "v1" else secret + method + signed_uri(url) + body
        expected = hashlib.sha256(source.encode()).hexdigest()
        if version in ("v1", "v2") and hmac.compare_digest(
            expected.encode(), lowered["x-hubspot-signature"].encode()
        ):
            return version
        msg = f"X-HubSpot-Signature ({version}) does not match the body"
        raise SignatureError(msg)
    msg = "missing header X-HubSpot-Signature-v3" + (
        "" if accept_legacy else " (legacy v1/v2 signatures are turned off)"
    )
    raise SignatureError(msg)


def _check_v3(
    secret: str, method: str, uri: str, body: str, signature: str, timestamp: str, now_ms: int
) -> None:
    if not (timestamp.isascii() and timestamp.isdigit()):  # '²' is a digit int() refuses
        msg = f"X-HubSpot-Request-Timestamp must be epoch milliseconds, got {timestamp[:20]!r}"
        raise SignatureError(msg)
    if abs(now_ms - int(timestamp)) > TOLERANCE_MS:
        msg = "X-HubSpot-Request-Timestamp is more than 5 minutes from our clock"
        raise SignatureError(msg)
    digest = hmac.new(secret.encode(), f"{method}{uri}{body}{timestamp}".encode(), hashlib.sha256)
    if not hmac.compare_digest(base64.b64encode(digest.digest()), signature.encode()):
        msg = "X-HubSpot-Signature-v3 does not match (check the client secret and the public URL)"
        raise SignatureError(msg)
