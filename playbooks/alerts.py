"""Slack and email alerts: sent beside the CRM's own work, never instead of it. A failure no
retry mends (no such Slack user, an address the relay refuses) is counted and logged, and the
playbook goes on: the CRM task stands.
"""

from __future__ import annotations

import logging
import re

from adapters.channels.email import EmailMessage
from adapters.channels.slack import SlackMessage
from integration.errors import ChannelError, CrmRetriableError
from integration.store.metrics import count
from playbooks.actions import SendEmail, SendSlack
from playbooks.edge import ExecutionContext, user

logger = logging.getLogger(__name__)

SLACK, EMAIL = "slack", "email"
EMAIL_ADDRESS = re.compile(r"[^\s<>@]+@[^\s<>@]+")
# Slack's answers for a person it cannot reach by DM (channels.slack.default_channel gets it).
NOT_IN_SLACK = frozenset({"users_not_found", "user_not_found", "user_deactivated"})


def send_alert(context: ExecutionContext, action: SendSlack | SendEmail) -> str:
    """A Slack message or an email. A failure that retrying will not mend (no such Slack user,
    an address the server refuses) is reported and recorded, and the playbook goes on: the
    CRM task still stands."""
    channel = "slack" if isinstance(action, SendSlack) else "email"
    try:
        return _deliver(context, action)
    except ChannelError as exc:
        if exc.retriable:
            raise CrmRetriableError(
                channel, "send", exc.message, retry_after_seconds=exc.retry_after_seconds
            ) from exc
        count(context.redis, "alert_failures", {"channel": channel})
        why = _without_addresses(exc.message)  # a relay's refusal often echoes the address
        logger.warning(
            "alert not delivered; the CRM task stands",
            extra={"account_id": action.account_id, "channel": channel, "why": why},
        )
        return f"failed: {why}"[:200]


def _without_addresses(text: str) -> str:
    return EMAIL_ADDRESS.sub("<address>", text)


def _deliver(context: ExecutionContext, action: SendSlack | SendEmail) -> str:
    person = user(context, action.owner_id) if action.owner_id else None
    address = person.email if person else None
    link = context.crm.record_url(action.account_crm_id)
    if isinstance(action, SendSlack):
        return _slack(context, action, address, person.name if person else None, link)
    if context.email is None:
        msg = "channels.email is not configured"
        raise ChannelError(EMAIL, msg, retriable=False)
    to = action.to or address
    if not to:
        msg = f"no email address for CRM user {action.owner_id!r}"
        raise ChannelError(EMAIL, msg, retriable=False)
    body = f"{action.body}\n\n{link}" if link else action.body
    return context.email.send(EmailMessage(to, action.subject, body))


def _slack(
    context: ExecutionContext,
    action: SendSlack,
    address: str | None,
    name: str | None,
    link: str | None,
) -> str:
    """A DM to the person, or the action's channel. Where the person cannot be found in Slack,
    channels.slack.default_channel (if set) gets the message, naming who it was for."""
    settings = context.config.channels.slack
    if context.slack is None or settings is None:
        msg = "channels.slack is not configured"
        raise ChannelError(SLACK, msg, retriable=False)
    fallback = settings.default_channel
    who = name or f"CRM user {action.owner_id}"
    if not action.channel and not address:
        if not fallback:
            msg = f"no email for {who} to find them in Slack"
            raise ChannelError(SLACK, msg, retriable=False)
        return _to_default_channel(
            context, action, fallback, link, f"{who}, who has no email in the CRM"
        )
    message = SlackMessage(action.text, address, action.channel, link, "Open in the CRM")
    try:
        return context.slack.send(message)
    except ChannelError as exc:
        if exc.code not in NOT_IN_SLACK or not fallback:
            raise
        return _to_default_channel(context, action, fallback, link, f"{who}, who is not in Slack")


def _to_default_channel(
    context: ExecutionContext, action: SendSlack, channel: str, link: str | None, whom: str
) -> str:
    assert context.slack is not None  # noqa: S101 - checked by the caller
    logger.warning(
        "Slack DM not possible; posted to the default channel",
        extra={"account_id": action.account_id},
    )
    text = f"{action.text}\n(For {whom}.)"
    posted = context.slack.send(SlackMessage(text, None, channel, link, "Open in the CRM"))
    return f"{posted} (default channel, for {whom})"[:200]
