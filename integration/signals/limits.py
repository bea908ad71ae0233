"""What we accept from outside, the same on every source: account ids, moments, kept JSON values.

One account-id rule for usage, Segment and job changes, so no source can store an id another
would refuse (`{'a': 1}` from a dict, `True` from a boolean, a header-like `acct\\nX-Injected`).
Moments are bounded so converting one to UTC never overflows, and values a job change keeps are
bounded so its RQ job always pickles and its JSON always round-trips.
"""

from __future__ import annotations

import json
from datetime import UTC, datetime
from typing import Annotated, Any

from pydantic import AfterValidator, AwareDatetime, Field, StringConstraints
from pydantic_core import PydanticCustomError

MAX_ACCOUNT_ID_CHARS = 200
# The years any signal may name: wide enough for any real event, narrow enough that every
# conversion or offset the workers apply (UTC, +/- days) stays inside datetime's range.
EARLIEST = datetime(1970, 1, 1, tzinfo=UTC)
LATEST = datetime(2200, 1, 1, tzinfo=UTC)
EARLIEST_MS = 0
LATEST_MS = int(LATEST.timestamp() * 1000)
# A value a job change keeps unparsed (its unknown fields): nesting and size of its JSON.
MAX_KEPT_DEPTH = 8
MAX_KEPT_CHARS = 16 * 1024
# pydantic error types, and a template that shows the problem as written (braces and all).
_ACCOUNT_ID, _MOMENT, _AS_SAID = "account_id", "moment", "{problem}"


def account_id_problem(value: object) -> str | None:
    """Why `value` cannot be an account id, or None when it can (after stripping blanks)."""
    if not isinstance(value, str):
        return f"expected a string account id, got {type(value).__name__}"
    text = value.strip()
    if not text:
        return "expected a non-blank account id"
    if len(text) > MAX_ACCOUNT_ID_CHARS:
        return f"expected at most {MAX_ACCOUNT_ID_CHARS} characters, got {len(text)}"
    if not text.isprintable():
        return f"expected printable text without control characters, got {text[:40]!r}"
    return None


def _valid_account_id(value: str) -> str:
    problem = account_id_problem(value)
    if problem:
        raise PydanticCustomError(_ACCOUNT_ID, _AS_SAID, {"problem": problem})
    return value


# For pydantic models: strings only (pydantic does not turn numbers into str), stripped.
AccountId = Annotated[
    str,
    StringConstraints(strip_whitespace=True, min_length=1, max_length=MAX_ACCOUNT_ID_CHARS),
    AfterValidator(_valid_account_id),
    Field(description="printable text without control characters, 1 to 200 characters"),
]


def moment_problem(value: datetime) -> str | None:
    """Why an aware datetime is no usable moment (year 1 at +01:00 overflows in UTC)."""
    try:
        in_utc = value.astimezone(UTC)
    except (OverflowError, ValueError):
        return "is outside the calendar's range once converted to UTC"
    if not EARLIEST <= in_utc < LATEST:
        return f"expected a moment from {EARLIEST.year} to {LATEST.year - 1}, got {in_utc.year}"
    return None


def _valid_moment(value: datetime) -> datetime:
    problem = moment_problem(value)
    if problem:
        raise PydanticCustomError(_MOMENT, _AS_SAID, {"problem": problem})
    return value


Moment = Annotated[AwareDatetime, AfterValidator(_valid_moment)]


def kept_value_problem(value: Any) -> str | None:  # noqa: ANN401 - JSON of any shape
    """Why a JSON value is too deep or too big to keep in a job, or None."""
    depth = json_depth(value, MAX_KEPT_DEPTH)
    if depth > MAX_KEPT_DEPTH:
        return f"nested more than {MAX_KEPT_DEPTH} levels deep; flatten it"
    size = len(json.dumps(value, ensure_ascii=False))
    if size > MAX_KEPT_CHARS:
        return f"takes {size} characters as JSON; at most {MAX_KEPT_CHARS} are kept"
    return None


def json_depth(value: Any, stop_past: int) -> int:  # noqa: ANN401 - JSON of any shape
    """Nesting depth of lists and dicts (a scalar is 0), counted without recursion; stops
    counting once past `stop_past`."""
    deepest, level = 0, [(value, 0)]
    while level:
        item, depth = level.pop()
        if not isinstance(item, dict | list):
            continue
        children = item.values() if isinstance(item, dict) else item
        deepest = max(deepest, depth + 1)
        if deepest > stop_past:
            return deepest
        level.extend((child, depth + 1) for child in children)
    return deepest
