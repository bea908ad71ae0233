"""Email alerts through the admin's SMTP relay: one plain-text message per call.

STARTTLS (verifying the server's certificate) unless the config turns it off, a login when a
username is configured, and a Message-ID we make, so the caller can record what was sent.
SMTP's own answer decides `retriable`: 4xx and lost connections may pass later, 5xx will not.
"""

from __future__ import annotations

import logging
import smtplib
import ssl
from dataclasses import dataclass
from email.message import EmailMessage as MimeMessage
from email.utils import formatdate, make_msgid

from integration.config.channels import EmailChannel
from integration.errors import ChannelError

logger = logging.getLogger(__name__)

CHANNEL = "email"


@dataclass(frozen=True, slots=True)
class EmailMessage:
    """One plain-text email to one address."""

    to: str
    subject: str
    body: str


class EmailSender:
    """Sends `EmailMessage`s through the relay `settings` names, logging in when given a user."""

    def __init__(self, settings: EmailChannel, username: str | None, password: str | None) -> None:
        if (username is None) != (password is None):
            msg = "an SMTP login needs both a username and a password"
            raise ValueError(msg)
        self._settings = settings
        self._username = username
        self._password = password

    def send(self, message: EmailMessage) -> str:
        """Send the message; returns its Message-ID (with the angle brackets)."""
        mime = self._mime(message)
        message_id = str(mime["Message-ID"])
        settings = self._settings
        timeout = settings.timeout_seconds
        try:
            with smtplib.SMTP(settings.host, settings.port, timeout=timeout) as smtp:
                if settings.starttls:
                    smtp.starttls(context=ssl.create_default_context())
                if self._username is not None and self._password is not None:
                    smtp.login(self._username, self._password)
                smtp.send_message(mime)
        except smtplib.SMTPRecipientsRefused as exc:
            codes = [code for code, _ in exc.recipients.values()]
            answers = "; ".join(_answer(code, text) for code, text in exc.recipients.values())
            msg = f"{settings.host} refused the recipient: {answers}"
            raise ChannelError(CHANNEL, msg, retriable=all(_transient(c) for c in codes)) from exc
        except smtplib.SMTPNotSupportedError as exc:
            msg = f"{settings.host} does not offer what the config asks for: {exc}"
            raise ChannelError(CHANNEL, msg, retriable=False) from exc
        except smtplib.SMTPResponseException as exc:
            msg = f"{settings.host} refused the message: {_answer(exc.smtp_code, exc.smtp_error)}"
            raise ChannelError(CHANNEL, msg, retriable=_transient(exc.smtp_code)) from exc
        except (smtplib.SMTPException, OSError) as exc:
            # Lost connections, timeouts, refused connections, TLS handshakes that failed.
            where = f"{settings.host}:{settings.port}"
            msg = f"could not deliver through {where}: {type(exc).__name__}: {exc}"
            retriable = not isinstance(exc, ssl.SSLCertVerificationError)
            raise ChannelError(CHANNEL, msg, retriable=retriable) from exc
        logger.info("email sent", extra={"message_id": message_id, "smtp_host": settings.host})
        return message_id

    def _mime(self, message: EmailMessage) -> MimeMessage:
        sender = self._settings.from_address
        mime = MimeMessage()
        try:
            mime["From"] = sender
            mime["To"] = message.to
            mime["Subject"] = message.subject
        except ValueError as exc:  # a line break in a header: refused, never sent as two headers
            msg = f"the email's address or subject is not a valid header: {exc}"
            raise ChannelError(CHANNEL, msg, retriable=False) from exc
        mime["Date"] = formatdate(usegmt=True)
        mime["Message-ID"] = make_msgid(domain=sender.rpartition("@")[2])
        # RFC 3834: an automatic message, so vacation responders stay quiet.
        mime["Auto-Submitted"] = "auto-generated"
        mime.set_content(message.body)
        return mime


def _transient(code: int) -> bool:
    """SMTP's 4xx answers are transient (RFC 5321 4.2.1); anything else will not pass later."""
    return 400 <= code < 500


def _answer(code: int, text: bytes | str) -> str:
    words = text.decode("utf-8", "replace") if isinstance(text, bytes) else text
    return f"{code} {words}".strip()
