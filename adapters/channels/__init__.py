"""Alerts outside the CRM: a Slack message (DM by email, or a channel) and a plain-text email.

Each sender raises `integration.errors.ChannelError` and nothing else, with `retriable` saying
whether trying later may help. A failed alert is reported by the caller; the CRM task stands.
"""

from __future__ import annotations

from adapters.channels.email import EmailMessage, EmailSender
from adapters.channels.slack import SlackMessage, SlackSender

__all__ = ["EmailMessage", "EmailSender", "SlackMessage", "SlackSender"]
