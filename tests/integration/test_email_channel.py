"""The email channel against a real SMTP server on loopback (aiosmtpd), one per test."""

from __future__ import annotations

import email
import email.policy
import socket
from collections.abc import Iterator
from dataclasses import dataclass, field
from typing import Any

import pytest
from aiosmtpd.controller import Controller
from aiosmtpd.smtp import SMTP, AuthResult, Envelope, LoginPassword, Session

from adapters.channels.email import EmailMessage, EmailSender
from integration.config.channels import EmailChannel
from integration.errors import ChannelError

FROM = "alerts@cs.example.com"
USERNAME, PASSWORD = "relay-user", "relay-pass"


@dataclass
class Mailbox:
    """An SMTP handler that keeps what it accepts and refuses what a test tells it to."""

    received: list[Envelope] = field(default_factory=list)
    rcpt_answer: str = "250 OK"
    data_answer: str = "250 Message accepted for delivery"

    async def handle_RCPT(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope, address: str, options: list[str]
    ) -> str:
        if self.rcpt_answer.startswith("250"):
            envelope.rcpt_tos.append(address)
        return self.rcpt_answer

    async def handle_DATA(  # noqa: N802 - aiosmtpd's hook name
        self, server: SMTP, session: Session, envelope: Envelope
    ) -> str:
        if self.data_answer.startswith("250"):
            self.received.append(envelope)
        return self.data_answer


def _authenticate(
    server: SMTP, session: Session, envelope: Envelope, mechanism: str, auth_data: Any
) -> AuthResult:
    ok = isinstance(auth_data, LoginPassword) and (auth_data.login, auth_data.password) == (
        USERNAME.encode(),
        PASSWORD.encode(),
    )
    return AuthResult(success=ok, handled=False)


def _free_port() -> int:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


@pytest.fixture
def mailbox() -> Iterator[tuple[Mailbox, int]]:
    handler = Mailbox()
    port = _free_port()
    # AUTH without TLS is fine on loopback; auth_required stays False, so aiosmtpd does not warn.
    controller = Controller(
        handler,
        hostname="127.0.0.1",
        port=port,
        authenticator=_authenticate,
        auth_require_tls=False,
    )
    controller.start()
    try:
        yield handler, port
    finally:
        controller.stop()


def _settings(port: int, **overrides: Any) -> EmailChannel:
    values: dict[str, Any] = {
        "host": "127.0.0.1",
        "port": port,
        "starttls": False,
        "from_address": FROM,
        "timeout_seconds": 5,
    }
    return EmailChannel(**{**values, **overrides})


MESSAGE = EmailMessage(
    to="dana.rep@example.com",
    subject="Acme: usage fell 46%",
    body="Weekly active users fell 46% against the 8-week baseline.\n\nOpen Acme in HubSpot.",
)


def _error(sender: EmailSender, message: EmailMessage = MESSAGE) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        sender.send(message)
    return caught.value


def test_email_arrives_readable_with_the_message_id_returned(
    mailbox: tuple[Mailbox, int],
) -> None:
    handler, port = mailbox

    message_id = EmailSender(_settings(port), None, None).send(MESSAGE)

    [envelope] = handler.received
    assert (envelope.mail_from, envelope.rcpt_tos) == (FROM, ["dana.rep@example.com"])
    assert isinstance(envelope.content, bytes)
    received = email.message_from_bytes(envelope.content, policy=email.policy.default)
    assert received["Message-ID"] == message_id
    assert message_id.startswith("<")
    assert message_id.endswith("@cs.example.com>")
    assert (received["From"], received["To"], received["Subject"]) == (
        FROM,
        "dana.rep@example.com",
        "Acme: usage fell 46%",
    )
    assert received["Auto-Submitted"] == "auto-generated"
    assert received.get_content_type() == "text/plain"
    body = received.get_body(("plain",))
    assert body is not None
    # SMTP carries CRLF line ends; the text is the body we sent.
    assert body.get_content().replace("\r\n", "\n") == (
        "Weekly active users fell 46% against the 8-week baseline.\n\nOpen Acme in HubSpot.\n"
    )


def test_each_email_gets_its_own_message_id(mailbox: tuple[Mailbox, int]) -> None:
    _, port = mailbox
    sender = EmailSender(_settings(port), None, None)

    assert sender.send(MESSAGE) != sender.send(MESSAGE)


def test_email_logs_in_when_a_username_is_configured(mailbox: tuple[Mailbox, int]) -> None:
    handler, port = mailbox

    EmailSender(_settings(port), USERNAME, PASSWORD).send(MESSAGE)

    assert len(handler.received) == 1


def test_wrong_password_is_a_permanent_error(mailbox: tuple[Mailbox, int]) -> None:
    handler, port = mailbox

    error = _error(EmailSender(_settings(port), USERNAME, "wrong"))

    assert (error.channel, error.retriable) == ("email", False)
    assert "535" in str(error)
    assert handler.received == []


@pytest.mark.parametrize(
    ("rcpt_answer", "retriable"),
    [("550 5.1.1 Mailbox unavailable", False), ("451 4.3.0 Try again later", True)],
)
def test_refused_recipient_is_a_channel_error_retriable_only_when_transient(
    mailbox: tuple[Mailbox, int], rcpt_answer: str, retriable: bool
) -> None:
    handler, port = mailbox
    handler.rcpt_answer = rcpt_answer

    error = _error(EmailSender(_settings(port), None, None))

    assert error.retriable is retriable
    assert str(error) == f"email: 127.0.0.1 refused the recipient: {rcpt_answer}"
    assert handler.received == []


def test_refused_message_body_is_permanent(mailbox: tuple[Mailbox, int]) -> None:
    handler, port = mailbox
    handler.data_answer = "554 5.7.1 Message rejected as spam"

    error = _error(EmailSender(_settings(port), None, None))

    assert not error.retriable
    assert "554 5.7.1 Message rejected as spam" in str(error)


def test_starttls_the_server_does_not_offer_is_a_permanent_error(
    mailbox: tuple[Mailbox, int],
) -> None:
    handler, port = mailbox

    error = _error(EmailSender(_settings(port, starttls=True), None, None))

    assert not error.retriable
    assert "STARTTLS" in str(error)
    assert handler.received == []


def test_unreachable_server_is_retriable() -> None:
    error = _error(EmailSender(_settings(_free_port()), None, None))

    assert error.retriable
    assert "could not deliver through 127.0.0.1:" in str(error)


def test_a_line_break_in_the_subject_is_refused_before_sending(
    mailbox: tuple[Mailbox, int],
) -> None:
    handler, port = mailbox
    injected = EmailMessage(to="dana.rep@example.com", subject="Hi\nBcc: x@evil.test", body="b")

    error = _error(EmailSender(_settings(port), None, None), injected)

    assert not error.retriable
    assert handler.received == []


def test_a_login_needs_both_username_and_password() -> None:
    with pytest.raises(ValueError, match="both a username and a password"):
        EmailSender(_settings(25), USERNAME, None)
