"""The `channels` config: strict keys, secrets named by variable, a login given whole."""

from __future__ import annotations

import pytest
from pydantic import ValidationError

from integration.config.channels import Channels, EmailChannel, SlackChannel


def test_defaults_name_slacks_api_and_the_bot_token_variable() -> None:
    slack = SlackChannel()

    assert (slack.token_env, slack.base_url, slack.default_channel) == (
        "SLACK_BOT_TOKEN",
        "https://slack.com/api/",
        None,
    )
    assert Channels() == Channels(slack=None, email=None)


def test_secret_envs_lists_every_variable_by_yaml_path() -> None:
    channels = Channels.model_validate(
        {
            "slack": {"token_env": "CS_SLACK_TOKEN", "default_channel": "#cs-alerts"},
            "email": {
                "host": "smtp.example.com",
                "from_address": "alerts@example.com",
                "username_env": "SMTP_USER",
                "password_env": "SMTP_PASSWORD",
            },
        }
    )

    assert channels.secret_envs() == {
        "slack.token_env": "CS_SLACK_TOKEN",
        "email.username_env": "SMTP_USER",
        "email.password_env": "SMTP_PASSWORD",
    }


def test_email_without_login_needs_no_secret() -> None:
    email = EmailChannel(host="localhost", port=25, starttls=False, from_address="a@example.com")

    assert email.secret_envs() == {}
    assert Channels(email=email).secret_envs() == {}


@pytest.mark.parametrize(
    ("raw", "message"),
    [
        ({"slack": {"token": "xoxb-secret"}}, "Extra inputs are not permitted"),
        ({"email": {"host": "h", "from_address": "nobody"}}, "String should match pattern"),
        ({"email": {"host": "h", "from_address": "a@b.c", "port": 0}}, "greater than or equal"),
        (
            {"email": {"host": "h", "from_address": "a@b.c", "username_env": "SMTP_USER"}},
            "username_env and password_env go together",
        ),
        ({"slack": {"token_env": "not a name"}}, "String should match pattern"),
        ({"slack": {"base_url": "https://slack.com/api"}}, "String should match pattern"),
    ],
)
def test_invalid_channels_are_refused(raw: dict[str, object], message: str) -> None:
    with pytest.raises(ValidationError, match=message):
        Channels.model_validate(raw)


def test_channels_are_frozen() -> None:
    slack = SlackChannel()

    with pytest.raises(ValidationError, match="frozen"):
        slack.token_env = "OTHER"  # type: ignore[misc]  # the point: assignment is refused
