"""The Slack channel against a loopback fake of Slack's Web API that checks every request."""

from __future__ import annotations

import json
import socket
import urllib.request
from collections.abc import Iterator
from typing import Any

import pytest

from adapters.channels.slack import SlackMessage, SlackSender
from integration.errors import ChannelError
from tests.fakes.slack_server import TEST_TOKEN, FakeSlack

RECORD_URL = "https://app.hubspot.com/contacts/123/record/0-2/456"


@pytest.fixture
def slack() -> Iterator[FakeSlack]:
    with FakeSlack() as fake:
        yield fake


@pytest.fixture
def sender(slack: FakeSlack) -> SlackSender:
    return SlackSender(TEST_TOKEN, slack.base_url, timeout=5)


def _error(sender: SlackSender, message: SlackMessage) -> ChannelError:
    with pytest.raises(ChannelError) as caught:
        sender.send(message)
    return caught.value


def test_dm_goes_to_the_person_found_by_email_with_the_text_and_a_link(
    slack: FakeSlack, sender: SlackSender
) -> None:
    user_id = slack.add_user("dana.rep@example.com")
    message = SlackMessage(
        text="Acme: weekly active users fell 46% against the 8-week baseline.",
        to_email="Dana.Rep@example.com",
        link=RECORD_URL,
        link_label="Open Acme in HubSpot",
    )

    address = sender.send(message)

    [posted] = slack.messages
    assert posted.to_user == user_id
    assert address == f"{posted.channel}:{posted.ts}"
    assert posted.channel.startswith("D")
    assert posted.text == (
        "Acme: weekly active users fell 46% against the 8-week baseline.\n"
        f"<{RECORD_URL}|Open Acme in HubSpot>"
    )
    assert posted.blocks == [
        {
            "type": "section",
            "text": {
                "type": "mrkdwn",
                "text": "Acme: weekly active users fell 46% against the 8-week baseline.",
            },
        },
        {
            "type": "section",
            "text": {"type": "mrkdwn", "text": f"<{RECORD_URL}|Open Acme in HubSpot>"},
        },
    ]
    lookup, post = slack.requests
    assert (lookup.method, lookup.args, lookup.status) == (
        "users.lookupByEmail",
        {"email": "Dana.Rep@example.com"},
        200,
    )
    assert lookup.authorization == f"Bearer {TEST_TOKEN}"
    assert (post.method, post.json_body) == ("chat.postMessage", True)
    assert post.args["channel"] == user_id
    assert post.authorization == f"Bearer {TEST_TOKEN}"


def test_channel_message_posts_to_the_named_channel_without_a_lookup(
    slack: FakeSlack, sender: SlackSender
) -> None:
    channel_id = slack.add_channel("cs-alerts")

    address = sender.send(SlackMessage(text="Globex: renewal in 30 days.", channel="#cs-alerts"))

    [posted] = slack.messages
    assert address == f"{channel_id}:{posted.ts}"
    assert posted.to_user is None
    assert [request.method for request in slack.requests] == ["chat.postMessage"]


def test_a_message_without_a_link_has_only_the_text_section(
    slack: FakeSlack, sender: SlackSender
) -> None:
    channel_id = slack.add_channel("cs-alerts")

    sender.send(SlackMessage(text="Initech: NPS 3 from the champion.", channel=channel_id))

    [posted] = slack.messages
    assert posted.text == "Initech: NPS 3 from the champion."
    assert posted.blocks == [
        {"type": "section", "text": {"type": "mrkdwn", "text": "Initech: NPS 3 from the champion."}}
    ]


def test_slack_control_characters_are_escaped_and_long_text_is_cut_to_the_block_limit(
    slack: FakeSlack, sender: SlackSender
) -> None:
    channel_id = slack.add_channel("cs-alerts")

    sender.send(SlackMessage(text="<!channel> R&D " + "x" * 5000, channel=channel_id))

    [posted] = slack.messages
    assert posted.blocks is not None
    section = posted.blocks[0]["text"]["text"]
    assert section.startswith("&lt;!channel&gt; R&amp;D xxx")
    assert len(section) == 3000
    assert section.endswith("x…")
    assert posted.text is not None
    assert len(posted.text) == 4000


def test_missing_slack_user_is_a_clear_error_that_is_not_retried(
    slack: FakeSlack, sender: SlackSender
) -> None:
    error = _error(sender, SlackMessage(text="hello", to_email="nobody@example.com"))

    assert str(error) == "slack: no Slack user with that email"
    assert (error.channel, error.retriable, error.code) == ("slack", False, "users_not_found")
    assert slack.messages == []
    assert [request.method for request in slack.requests] == ["users.lookupByEmail"]


def test_deactivated_slack_user_is_not_messaged(slack: FakeSlack, sender: SlackSender) -> None:
    slack.add_user("gone@example.com", deleted=True)

    error = _error(sender, SlackMessage(text="hello", to_email="gone@example.com"))

    assert str(error) == "slack: the Slack user with that email is deactivated"
    assert not error.retriable
    assert slack.messages == []


def test_bad_token_names_slacks_error_and_is_not_retried(slack: FakeSlack) -> None:
    slack.add_user("dana.rep@example.com")
    sender = SlackSender("xoxb-wrong", slack.base_url, timeout=5)

    error = _error(sender, SlackMessage(text="hello", to_email="dana.rep@example.com"))

    assert (error.retriable, error.code) == (False, "invalid_auth")
    assert "invalid_auth" in str(error)


@pytest.mark.parametrize(
    ("member", "archived", "code"),
    [(False, False, "not_in_channel"), (True, True, "is_archived")],
)
def test_channel_the_app_cannot_post_to_names_slacks_error(
    slack: FakeSlack, sender: SlackSender, member: bool, archived: bool, code: str
) -> None:
    channel_id = slack.add_channel("private-cs", member=member, archived=archived)

    error = _error(sender, SlackMessage(text="hello", channel=channel_id))

    assert (error.retriable, error.code) == (False, code)
    assert code in str(error)


def test_unknown_channel_names_channel_not_found(slack: FakeSlack, sender: SlackSender) -> None:
    error = _error(sender, SlackMessage(text="hello", channel="#no-such-channel"))

    assert (error.retriable, error.code) == (False, "channel_not_found")
    assert "channel_not_found" in str(error)


def test_rate_limit_is_retriable_with_slacks_retry_after_and_the_retry_posts_once(
    slack: FakeSlack, sender: SlackSender
) -> None:
    slack.add_user("dana.rep@example.com")
    slack.rate_limit("chat.postMessage", retry_after_seconds=17)
    message = SlackMessage(text="hello", to_email="dana.rep@example.com")

    error = _error(sender, message)

    assert (error.retriable, error.retry_after_seconds, error.code) == (True, 17.0, "ratelimited")
    assert "HTTP 429" in str(error)
    assert slack.messages == []

    sender.send(message)

    assert len(slack.messages) == 1


def test_slack_server_error_is_retriable(slack: FakeSlack, sender: SlackSender) -> None:
    slack.add_user("dana.rep@example.com")
    slack.fail("users.lookupByEmail", status=503)

    error = _error(sender, SlackMessage(text="hello", to_email="dana.rep@example.com"))

    assert (error.retriable, error.retry_after_seconds) == (True, None)
    assert "HTTP 503" in str(error)


def test_slack_that_does_not_answer_in_time_is_retriable(slack: FakeSlack) -> None:
    channel_id = slack.add_channel("cs-alerts")
    slack.stall("chat.postMessage", seconds=5)
    sender = SlackSender(TEST_TOKEN, slack.base_url, timeout=1)

    error = _error(sender, SlackMessage(text="hello", channel=channel_id))

    assert error.retriable
    assert "chat.postMessage did not answer" in str(error)


def test_slack_that_cannot_be_reached_is_retriable() -> None:
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port = probe.getsockname()[1]
    sender = SlackSender(TEST_TOKEN, f"http://127.0.0.1:{port}/api/", timeout=2)

    error = _error(sender, SlackMessage(text="hello", channel="C1"))

    assert error.retriable
    assert "chat.postMessage did not answer" in str(error)


def test_message_with_neither_person_nor_channel_is_refused_before_calling_slack(
    slack: FakeSlack, sender: SlackSender
) -> None:
    error = _error(sender, SlackMessage(text="hello"))

    assert not error.retriable
    assert slack.requests == []


# -- the fake answers as Slack does -------------------------------------------------------------


def _call(
    slack: FakeSlack, method: str, body: bytes | None, headers: dict[str, str]
) -> tuple[int, Any]:
    request = urllib.request.Request(  # noqa: S310 - a loopback URL the test built
        slack.base_url + method, data=body, headers=headers, method="POST"
    )
    with urllib.request.urlopen(request, timeout=5) as response:  # noqa: S310 - loopback
        return response.status, json.loads(response.read())


BEARER = {"Authorization": f"Bearer {TEST_TOKEN}"}
FORM = {"Content-Type": "application/x-www-form-urlencoded"}
JSON = {"Content-Type": "application/json; charset=utf-8"}
JSON_AUTHED = {**JSON, **BEARER}
KOI8_FORM = {"Content-Type": "application/x-www-form-urlencoded; charset=koi8-r", **BEARER}
XML = {"Content-Type": "application/xml", **BEARER}
TOKEN_IN_JSON = b'{"channel": "C1", "text": "hi", "token": "xoxb-test-token"}'
BAD_BLOCKS = b'{"channel": "C1", "blocks": [{"type": "x"}]}'


@pytest.mark.parametrize(
    ("method", "body", "headers", "error"),
    [
        ("users.lookupByEmail", b"email=a%40example.com", FORM, "not_authed"),
        ("users.lookupByEmail", b"email=a%40example.com&token=xoxb-no", FORM, "invalid_auth"),
        ("chat.postMessage", TOKEN_IN_JSON, JSON, "not_authed"),
        ("users.lookupByEmail", b"token=xoxb-test-token", FORM, "invalid_arguments"),
        ("chat.postMessage", b'{"channel": "C1"}', JSON_AUTHED, "no_text"),
        ("chat.postMessage", b'{"text": "hi"}', JSON_AUTHED, "channel_not_found"),
        ("chat.postMessage", BAD_BLOCKS, JSON_AUTHED, "invalid_blocks"),
        ("chat.postMessage", b"[1]", JSON_AUTHED, "json_not_object"),
        ("chat.postMessage", b"{", JSON_AUTHED, "invalid_json"),
        ("chat.postMessage", b"<xml/>", XML, "invalid_post_type"),
        ("chat.postMessage", b"a=b", KOI8_FORM, "invalid_charset"),
        ("users.list", b"token=xoxb-test-token", FORM, "unknown_method"),
    ],
)
def test_fake_refuses_what_slack_refuses_with_http_200(
    slack: FakeSlack, method: str, body: bytes, headers: dict[str, str], error: str
) -> None:
    status, answer = _call(slack, method, body, headers)

    assert (status, answer["ok"], answer["error"]) == (200, False, error)


def test_fake_takes_a_form_post_with_the_token_in_the_body(slack: FakeSlack) -> None:
    user_id = slack.add_user("a@example.com")

    status, answer = _call(
        slack, "users.lookupByEmail", b"token=xoxb-test-token&email=a%40example.com", FORM
    )

    assert (status, answer["ok"], answer["user"]["id"]) == (200, True, user_id)
    assert answer["user"]["profile"]["email"] == "a@example.com"
