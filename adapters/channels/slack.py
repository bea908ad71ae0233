"""Slack alerts through Slack's Web API client: a DM to a person found by email, or a channel.

The message is text (what notifications and screen readers show) plus Block Kit blocks: a
section with the same text and a link to the CRM record. The client does not retry: a 429, a
5xx or a timeout comes back at once as a retriable `ChannelError` (with Slack's Retry-After),
so the job queue decides when to try again and no worker sleeps on Slack's behalf.
"""

from __future__ import annotations

import logging
import math
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any
from urllib.error import URLError

from slack_sdk import WebClient
from slack_sdk.errors import SlackApiError, SlackClientError
from slack_sdk.web import SlackResponse

from integration.errors import ChannelError

logger = logging.getLogger(__name__)

CHANNEL = "slack"
# https://docs.slack.dev/reference/block-kit/blocks/section-block: text is at most 3,000 characters.
SECTION_TEXT_LIMIT = 3000
# https://docs.slack.dev/reference/methods/chat.postMessage: text past 4,000 characters is
# truncated (40,000 is the hard limit); we cut first, and say so.
MESSAGE_TEXT_LIMIT = 4000
# Slack's errors a person must act on, with what to tell them. Anything not listed here and not
# retriable is reported with Slack's own error code.
# https://docs.slack.dev/reference/methods/users.lookupByEmail,
# https://docs.slack.dev/reference/methods/chat.postMessage
PERMANENT_ERRORS = {
    "users_not_found": "no Slack user with that email",
    "user_not_found": "no Slack user with that email",
    "invalid_auth": "Slack refused the bot token (invalid_auth): check the token's variable",
    "not_authed": "Slack got no bot token (not_authed): check the token's variable",
    "account_inactive": "the bot token belongs to a deleted user or workspace (account_inactive)",
    "token_revoked": "the bot token was revoked (token_revoked): reinstall the Slack app",
    "missing_scope": "the Slack app lacks a scope (missing_scope): it needs chat:write and "
    "users:read.email",
    "channel_not_found": "Slack has no channel by that name or id (channel_not_found)",
    "not_in_channel": "the Slack app is not a member of that channel (not_in_channel): invite it",
    "is_archived": "that Slack channel is archived (is_archived)",
}
# https://docs.slack.dev/apis/web-api/rate-limits and the common errors: a transient state.
RETRIABLE_ERRORS = frozenset(
    {
        "ratelimited",
        "rate_limited",
        "internal_error",
        "fatal_error",
        "service_unavailable",
        "request_timeout",
        "team_added_to_org",
    }
)


@dataclass(frozen=True, slots=True)
class SlackMessage:
    """One alert: to the person with `to_email` (a DM), else to `channel`."""

    text: str
    to_email: str | None = None
    channel: str | None = None
    link: str | None = None
    link_label: str | None = None


class SlackSender:
    """Posts `SlackMessage`s with one bot token; `base_url` is Slack's Web API or a fake of it."""

    def __init__(self, token: str, base_url: str, timeout: float = 10) -> None:
        self._client = WebClient(
            token=token,
            base_url=base_url if base_url.endswith("/") else base_url + "/",
            timeout=max(1, math.ceil(timeout)),  # the client takes whole seconds
            retry_handlers=[],
        )

    def send(self, message: SlackMessage) -> str:
        """Post the message; returns "<channel>:<ts>", the message's address in Slack."""
        if message.to_email:
            channel = self._user_id(message.to_email)
        elif message.channel:
            channel = message.channel
        else:
            msg = "a Slack message needs a person's email or a channel, and got neither"
            raise ChannelError(CHANNEL, msg, retriable=False)
        response = self._call(
            "chat.postMessage",
            lambda: self._client.chat_postMessage(
                channel=channel,
                text=_fallback_text(message),
                blocks=_blocks(message),
                unfurl_links=False,
                unfurl_media=False,
            ),
        )
        posted_channel, ts = response.get("channel"), response.get("ts")
        if not isinstance(posted_channel, str) or not isinstance(ts, str):
            msg = "chat.postMessage answered ok without the message's channel and ts"
            raise ChannelError(CHANNEL, msg, retriable=False)
        logger.info("Slack message posted", extra={"slack_channel": posted_channel, "ts": ts})
        return f"{posted_channel}:{ts}"

    def _user_id(self, email: str) -> str:
        response = self._call(
            "users.lookupByEmail", lambda: self._client.users_lookupByEmail(email=email)
        )
        user = response.get("user")
        user_id = user.get("id") if isinstance(user, Mapping) else None
        if not isinstance(user_id, str) or not user_id:
            msg = "users.lookupByEmail answered ok without user.id"
            raise ChannelError(CHANNEL, msg, retriable=False)
        if isinstance(user, Mapping) and user.get("deleted") is True:
            msg = "the Slack user with that email is deactivated"
            raise ChannelError(CHANNEL, msg, retriable=False, code="user_deactivated")
        return user_id

    def _call(self, method: str, call: Callable[[], SlackResponse]) -> SlackResponse:
        try:
            return call()
        except SlackApiError as exc:
            raise _api_error(method, exc.response) from exc
        except (URLError, TimeoutError, OSError) as exc:
            msg = f"{method} did not answer: {_reason(exc)}"
            raise ChannelError(CHANNEL, msg, retriable=True) from exc
        except SlackClientError as exc:
            msg = f"{method} could not be sent: {exc}"
            raise ChannelError(CHANNEL, msg, retriable=False) from exc


def _api_error(method: str, response: SlackResponse) -> ChannelError:
    status = response.status_code
    data: Any = response.data
    code = data.get("error") if isinstance(data, Mapping) else None
    code = code if isinstance(code, str) else None
    if status == 429:
        retry_after = _retry_after_seconds(response.headers)
        wait = f", retry after {retry_after:g}s" if retry_after is not None else ""
        msg = f"{method} was rate limited by Slack (HTTP 429{wait})"
        return ChannelError(CHANNEL, msg, True, retry_after, code or "ratelimited")
    if status >= 500 or status == 408:
        msg = f"{method} failed on Slack's side (HTTP {status}); try again later"
        return ChannelError(CHANNEL, msg, retriable=True, code=code)
    if code in RETRIABLE_ERRORS:
        msg = f"{method} failed on Slack's side ({code}); try again later"
        return ChannelError(CHANNEL, msg, retriable=True, code=code)
    if code in PERMANENT_ERRORS:
        return ChannelError(CHANNEL, PERMANENT_ERRORS[code], retriable=False, code=code)
    if status != 200:
        msg = f"{method} was refused with HTTP {status} ({code or 'no error code'})"
        return ChannelError(CHANNEL, msg, retriable=False, code=code)
    msg = f"Slack refused {method}: {code or 'no error code'}"
    return ChannelError(CHANNEL, msg, retriable=False, code=code)


def _retry_after_seconds(headers: Mapping[str, Any]) -> float | None:
    for name, value in headers.items():
        if name.lower() == "retry-after":
            raw = value[0] if isinstance(value, list | tuple) and value else value
            try:
                seconds = float(raw)
            except (TypeError, ValueError):
                return None
            return seconds if seconds >= 0 else None
    return None


def _reason(exc: BaseException) -> str:
    if isinstance(exc, URLError):
        reason = exc.reason
        return reason if isinstance(reason, str) else _reason(reason)
    return f"{type(exc).__name__}: {exc}" if str(exc) else type(exc).__name__


def _escape(text: str) -> str:
    """Slack's mrkdwn control characters, escaped as its docs ask (&, <, >)."""
    return text.replace("&", "&amp;").replace("<", "&lt;").replace(">", "&gt;")


def _link(message: SlackMessage) -> str | None:
    if not message.link:
        return None
    # `|` and `>` end the URL part of <url|label>; percent-encode them.
    url = message.link.replace("|", "%7C").replace(">", "%3E").replace("<", "%3C")
    label = _escape(message.link_label or "Open the CRM record").replace("|", "¦")
    return f"<{url}|{label}>"


def _fit(text: str, limit: int) -> str:
    """`text` escaped, cut with an ellipsis to `limit` characters without splitting an entity."""
    escaped = _escape(text)
    if len(escaped) <= limit:
        return escaped
    keep = limit - 1
    while len(escaped := _escape(text[:keep])) > limit - 1:
        keep -= len(escaped) - (limit - 1)
    return escaped + "…"


def _fallback_text(message: SlackMessage) -> str:
    link = _link(message)
    if link is None:
        return _fit(message.text, MESSAGE_TEXT_LIMIT)
    return _fit(message.text, MESSAGE_TEXT_LIMIT - len(link) - 1) + "\n" + link


def _blocks(message: SlackMessage) -> list[dict[str, Any]]:
    link = _link(message)
    blocks: list[dict[str, Any]] = [
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": _fit(message.text, SECTION_TEXT_LIMIT)},
        }
    ]
    if link is not None:
        blocks.append({"type": "section", "text": {"type": "mrkdwn", "text": link}})
    return blocks
