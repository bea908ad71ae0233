"""The shape a Segment message must have before any of it is used (reference/segment.md 2-3).

Segment types `context`, `traits` and `properties` as objects and `messageId`, `userId`,
`groupId` and `event` as strings; a message breaking that is malformed, and the delivery is
refused with the field named, rather than parsed into ids like `"{'a': 1}"` or `"True"`.
Account ids go through the same rule as every other source's (limits.account_id_problem).
"""

from __future__ import annotations

from typing import Any

from integration.errors import PayloadError
from integration.signals.limits import account_id_problem

SOURCE = "segment"
# Segment's own messageId limit is 100 characters (reference/segment.md 2); ours leaves room,
# and bounds event names and user ids alike.
MAX_TEXT_CHARS = 200
OBJECT_FIELDS = ("context", "traits", "properties")
TEXT_FIELDS = ("messageId", "event", "type")


def join(prefix: str, name: str) -> str:
    return f"{prefix}.{name}" if prefix else name


def object_field(parent: dict[str, Any], name: str, prefix: str) -> dict[str, Any]:
    """`parent[name]` when it is an object, {} when absent or null; else PayloadError."""
    value = parent.get(name)
    if value is None:
        return {}
    if not isinstance(value, dict):
        msg = f"expected an object, got {type(value).__name__}"
        raise PayloadError(SOURCE, join(prefix, name), msg)
    return value


def check_message(message: dict[str, Any], prefix: str) -> None:
    """Raise PayloadError naming the first field whose type Segment's spec rules out."""
    for name in OBJECT_FIELDS:
        object_field(message, name, prefix)
    object_field(object_field(message, "context", prefix), "traits", join(prefix, "context"))
    for name in TEXT_FIELDS:
        value = message.get(name)
        if value is not None and not isinstance(value, str):
            msg = f"expected a string, got {type(value).__name__}"
            raise PayloadError(SOURCE, join(prefix, name), msg)
    for name in ("userId", "anonymousId"):
        value = message.get(name)
        if value is not None and (isinstance(value, bool) or not isinstance(value, str | int)):
            msg = f"expected a string, got {type(value).__name__}"
            raise PayloadError(SOURCE, join(prefix, name), msg)
    # The same bounds as /webhooks/usage's ids and event names: each is kept in Redis.
    for name in ("messageId", "event", "userId", "anonymousId"):
        text = str(message.get(name) or "")
        if len(text) > MAX_TEXT_CHARS:
            msg = f"expected at most {MAX_TEXT_CHARS} characters, got {len(text)}"
            raise PayloadError(SOURCE, join(prefix, name), msg)


def account(message: dict[str, Any], kind: str, account_path: str, prefix: str) -> str | None:
    """The account a message names: a group call's groupId, context.groupId, else the
    configured trait path (in the message's traits, then in context.traits)."""
    if kind == "group" and message.get("groupId") not in (None, ""):
        return account_id(message["groupId"], join(prefix, "groupId"), numbers=False)
    context = object_field(message, "context", prefix)
    if context.get("groupId") not in (None, ""):
        return account_id(context["groupId"], join(prefix, "context.groupId"), numbers=False)
    return path_account(message, "traits", account_path, prefix) or path_account(
        context, "traits", account_path, join(prefix, "context")
    )


def path_account(parent: dict[str, Any], name: str, account_path: str, prefix: str) -> str | None:
    """The account at `account_path` inside `parent[name]` (traits or properties), if any."""
    value: Any = parent.get(name)
    for part in account_path.split("."):
        if not isinstance(value, dict):
            return None
        value = value.get(part)
    if value in (None, ""):
        return None
    return account_id(value, join(prefix, f"{name}.{account_path}"), numbers=True)


def account_id(value: Any, field: str, numbers: bool) -> str:  # noqa: ANN401 - as sent
    """The id as text, or PayloadError. Segment's spec types `company.id` as String or Number,
    so a trait path may hold a whole number; a groupId is a string only."""
    if numbers and isinstance(value, int) and not isinstance(value, bool):
        value = str(value)
    problem = account_id_problem(value)
    if problem:
        raise PayloadError(SOURCE, field, problem)
    return str(value).strip()
