"""HubSpot's failures, translated at the boundary into the service's error tree.

hubspot-api-client raises a different ApiException class per API package, so exceptions are read by
duck typing (`status`, `body`, `headers`), and urllib3's network errors count as retriable.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from typing import Any

from adapters.batching import INVALID_REQUEST_STATUSES, InvalidRecordsError
from integration.errors import CrmError, CrmFatalError, CrmRetriableError

CRM = "hubspot"
# https://developers.hubspot.com/docs/api-reference/error-handling: wait at least 2 s on 423.
LOCKED_WAIT_SECONDS = 2.0
# HubSpot's burst window; used when a 429 does not say how long to wait.
TEN_SECONDLY_WAIT_SECONDS = 10.0
SECONDLY_WAIT_SECONDS = 1.0
# The daily limit resets at midnight in the portal's time zone (budget.hubspot_time_zone): the
# transport sets the wait until then (adapters/budget.py); this stands in without a transport.
DAILY_WAIT_SECONDS = 3600.0
DAILY_POLICY = "DAILY"
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504, 521, 523, 524})
# https://developers.hubspot.com/docs/api-reference/error-handling: the detail code of a property
# the portal does not have, its name in context.propertyName (reference/hubspot.md 5.2).
UNKNOWN_PROPERTY_CODE = "PROPERTY_DOESNT_EXIST"
_NETWORK_ERROR_NAMES = frozenset(
    {
        "TimeoutError",
        "ReadTimeoutError",
        "ConnectTimeoutError",
        "ProtocolError",
        "MaxRetryError",
        "NewConnectionError",
        "ConnectionError",
        "Timeout",
        "ConnectTimeout",
        "ReadTimeout",
    }
)


class DailyLimitError(CrmRetriableError):
    """HubSpot refused for the portal's daily limit: nothing goes until its midnight reset."""

    def __init__(self, operation: str, message: str, asked_seconds: float | None) -> None:
        wait = asked_seconds if asked_seconds is not None else DAILY_WAIT_SECONDS
        super().__init__(CRM, operation, message, 429, wait)
        self.asked_seconds = asked_seconds  # a Retry-After HubSpot sent, which wins


def translate(exc: Exception, operation: str) -> CrmError | None:
    """The service's error for a client exception, or None when it is not a HubSpot failure."""
    status = getattr(exc, "status", None)
    if isinstance(status, int):
        return from_response(
            status, getattr(exc, "body", None), getattr(exc, "headers", None), operation
        )
    if any(cls.__name__ in _NETWORK_ERROR_NAMES for cls in type(exc).__mro__):
        return CrmRetriableError(CRM, operation, f"network error: {type(exc).__name__}")
    return None


def from_response(
    status: int, body: object, headers: Mapping[str, str] | None, operation: str
) -> CrmError:
    """Classify one HTTP answer: wait-and-retry, or stop with HubSpot's own words."""
    error = _parse(body)
    headers = {k.lower(): v for k, v in (headers or {}).items()}
    message = _describe(status, error)
    if status == 429 and error.get("policyName") == DAILY_POLICY:
        # https://developers.hubspot.com/docs/developer-tooling/platform/usage-guidelines: the
        # daily limit resets at midnight in the account's time zone; a Retry-After wins.
        return DailyLimitError(operation, message, _retry_after(headers))
    if status == 429:
        return CrmRetriableError(CRM, operation, message, status, _rate_limit_wait(error, headers))
    if status == 423:
        return CrmRetriableError(CRM, operation, message, status, LOCKED_WAIT_SECONDS)
    if status == 477 or status in TRANSIENT_STATUSES:
        return CrmRetriableError(CRM, operation, message, status, _retry_after(headers))
    if status in INVALID_REQUEST_STATUSES:
        return InvalidRecordsError(CRM, operation, message, status, unknown_properties(error))
    return CrmFatalError(CRM, operation, message, status)


def unknown_properties(error: Mapping[str, Any]) -> set[str]:
    """Properties a VALIDATION_ERROR says the portal does not have: any record naming one is
    refused, so a batch split can set those records aside without sending them again."""
    names: set[str] = set()
    details = error.get("errors")
    for detail in details if isinstance(details, list) else []:
        if not isinstance(detail, dict) or detail.get("code") != UNKNOWN_PROPERTY_CODE:
            continue
        context = detail.get("context")
        found = context.get("propertyName") if isinstance(context, dict) else None
        if isinstance(found, list):
            names.update(str(name) for name in found)
    return names


def _parse(body: object) -> dict[str, Any]:
    if isinstance(body, bytes):
        body = body.decode("utf-8", "replace")
    if isinstance(body, str):
        try:
            parsed = json.loads(body)
        except ValueError:
            return {"message": body[:300]}
        return parsed if isinstance(parsed, dict) else {}
    return body if isinstance(body, dict) else {}


def _describe(status: int, error: Mapping[str, Any]) -> str:
    """HubSpot's message with the category and correlationId support will ask for."""
    message = str(error.get("message") or f"HTTP {status}")
    tags = [str(error[k]) for k in ("category", "policyName") if error.get(k)]
    if error.get("correlationId"):
        tags.append(f"correlationId {error['correlationId']}")
    return f"{message} [{', '.join(tags)}]" if tags else message


def _retry_after(headers: Mapping[str, str]) -> float | None:
    try:
        return float(headers["retry-after"])
    except (KeyError, ValueError):
        return None


def _rate_limit_wait(error: Mapping[str, Any], headers: Mapping[str, str]) -> float:
    # Whether a 429 from the CRM API carries Retry-After is UNCONFIRMED (reference/hubspot.md
    # 5.1): honour it when present, else wait by the policy HubSpot names.
    asked = _retry_after(headers)
    if asked is not None:
        return asked
    policy = str(error.get("policyName", ""))
    if policy == "TEN_SECONDLY_ROLLING":
        interval_ms = headers.get("x-hubspot-ratelimit-interval-milliseconds", "")
        return float(interval_ms) / 1000 if interval_ms.isdigit() else TEN_SECONDLY_WAIT_SECONDS
    return SECONDLY_WAIT_SECONDS  # search's "secondly" limit names no policy
