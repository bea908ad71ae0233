"""Salesforce's failures, translated at the boundary into the service's error tree.

simple-salesforce raises one exception class per HTTP status and keeps the parsed error array
(`[{"message", "errorCode"}]`) in `.content`; REQUEST_LIMIT_EXCEEDED arrives as a 403.
"""

from __future__ import annotations

import re
from collections.abc import Collection
from typing import Any

import requests
from simple_salesforce.exceptions import SalesforceAuthenticationFailed, SalesforceError

from adapters.batching import INVALID_REQUEST_STATUSES, InvalidRecordsError
from integration.errors import CrmError, CrmFatalError, CrmRetriableError

CRM = "salesforce"
# The daily allocation is a rolling 24 hours: come back in an hour rather than hammer (the
# transport estimates better from the ledger when it can: adapters/budget.py).
DAILY_LIMIT_WAIT_SECONDS = 3600.0
# Too many concurrent long requests: a short wait is enough.
CONCURRENCY_WAIT_SECONDS = 30.0
LOCKED_ROW_WAIT_SECONDS = 2.0
TRANSIENT_STATUSES = frozenset({500, 502, 503, 504})
# https://developer.salesforce.com/docs/atlas.en-us.api_rest.meta/api_rest/errorcodes.htm
TRANSIENT_CODES = frozenset({"UNABLE_TO_LOCK_ROW", "SERVER_UNAVAILABLE"})
# A field the object lacks (reference/salesforce.md 3); the message names it as "No such column
# 'X' on sobject of type Account" (wording UNCONFIRMED by a primary source; `fields` is used too).
UNKNOWN_FIELD_CODE = "INVALID_FIELD"
UNKNOWN_COLUMN = re.compile(r"No such column '([^']+)'")


class DailyLimitError(CrmRetriableError):
    """The org's rolling 24 h API allocation is spent (REQUEST_LIMIT_EXCEEDED, TotalRequests):
    calls free up only as the oldest leave the window."""


def first_error(content: Any) -> tuple[str, str]:  # noqa: ANN401 - parsed JSON of any shape
    """(errorCode, message) of the first entry of Salesforce's error array."""
    if isinstance(content, list) and content and isinstance(content[0], dict):
        entry = content[0]
        return str(entry.get("errorCode") or entry.get("statusCode") or ""), str(
            entry.get("message") or ""
        )
    return "", str(content)[:300]


def translate(exc: Exception, operation: str) -> CrmError | None:
    if isinstance(exc, SalesforceAuthenticationFailed):
        msg = f"login failed ({exc.code}): {exc.message}; check crm.salesforce.auth"
        return CrmFatalError(CRM, operation, msg, 401)
    if isinstance(exc, SalesforceError):
        code, message = first_error(exc.content)
        unknown = unknown_fields(exc.content) if code == UNKNOWN_FIELD_CODE else set()
        return classify(exc.status, code, message, operation, unknown)
    if isinstance(exc, (requests.ConnectionError, requests.Timeout)):
        return CrmRetriableError(CRM, operation, f"network error: {type(exc).__name__}")
    return None


def classify(
    status: int, code: str, message: str, operation: str, unknown: Collection[str] = ()
) -> CrmError:
    """Wait-and-retry, or stop; a 400 may be one record's fault, so a batch can be split."""
    text = f"{code}: {message}" if code else message
    if code == "REQUEST_LIMIT_EXCEEDED":
        if "TotalRequests" in message:
            return DailyLimitError(CRM, operation, text, status, DAILY_LIMIT_WAIT_SECONDS)
        return CrmRetriableError(CRM, operation, text, status, CONCURRENCY_WAIT_SECONDS)
    if code == "UNABLE_TO_LOCK_ROW":
        return CrmRetriableError(CRM, operation, text, status, LOCKED_ROW_WAIT_SECONDS)
    if status in TRANSIENT_STATUSES or code in TRANSIENT_CODES:
        return CrmRetriableError(CRM, operation, text, status)
    if status == 401:  # noqa: PLR2004 - still expired after simple-salesforce logged in again
        return CrmRetriableError(CRM, operation, text, status)
    if status in INVALID_REQUEST_STATUSES:
        return InvalidRecordsError(CRM, operation, text, status, unknown)
    return CrmFatalError(CRM, operation, text, status)


def unknown_fields(content: Any) -> set[str]:  # noqa: ANN401 - parsed JSON of any shape
    """Fields an INVALID_FIELD answer says the object lacks: any record naming one is refused."""
    names: set[str] = set()
    for entry in content if isinstance(content, list) else []:
        if isinstance(entry, dict):
            names.update(str(f) for f in entry.get("fields") or [])
            names.update(UNKNOWN_COLUMN.findall(str(entry.get("message") or "")))
    return names
