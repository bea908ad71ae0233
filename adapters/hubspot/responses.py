"""Reading HubSpot's answers: a sequences call's status, 207 errors, a contact's company."""

from __future__ import annotations

import json
from collections.abc import Sequence
from typing import Any

import requests

from adapters.hubspot.errors import CRM
from integration.errors import CrmFeatureUnavailableError

CLIENT_ERRORS = range(400, 500)


class HttpAnswerError(Exception):
    """A non-2xx answer from api_request, shaped like the SDK's ApiException for translate()."""

    def __init__(self, status: int, body: str, headers: dict[str, str]) -> None:
        super().__init__(f"HTTP {status}")
        self.status, self.body, self.headers = status, body, headers


def checked(response: requests.Response) -> dict[str, Any]:
    if response.status_code >= 300:  # noqa: PLR2004 - any non-2xx answer is a failure here
        # 403: no sequences scope or paid seat; other 4xx (already enrolled, unsubscribed, no
        # connected inbox; statuses UNCONFIRMED): the owner gets the task to do it by hand.
        if CLIENT_ERRORS.start <= response.status_code < CLIENT_ERRORS.stop:
            raise FeatureMissingError(response.text, response.status_code)
        raise HttpAnswerError(response.status_code, response.text, dict(response.headers))
    return response.json() if response.content else {}


class FeatureMissingError(CrmFeatureUnavailableError):
    def __init__(self, body: str, status: int) -> None:
        error = json.loads(body) if body.startswith("{") else {}
        message = error.get("message") or "HubSpot refused the sequences API"
        category = error.get("category", "")
        super().__init__(CRM, "enroll_in_sequence", f"{message} [{category}]", status)


def primary_company(record: Any) -> str | None:  # noqa: ANN401 - the SDK's models are untyped
    """The contact's primary company id from an associations read, else its first company."""
    associations = getattr(record, "associations", None) or {}
    companies = associations.get("companies")
    results = getattr(companies, "results", None) or []
    primary = [r.id for r in results if getattr(r, "type", "") == "contact_to_company"]
    ids = primary or [r.id for r in results]
    return str(ids[0]) if ids else None


def error_reasons(errors: Sequence[Any]) -> dict[str, str]:
    """Map record ids named in a 207's errors to HubSpot's message ('*' when none are named)."""
    reasons: dict[str, str] = {}
    for error in errors:
        message = f"{error.message} [{error.category}]"
        ids = (error.context or {}).get("ids") or []
        for record_id in ids:
            reasons[str(record_id)] = message
        if not ids:
            reasons.setdefault("*", message)
    return reasons
