"""Where alerts go besides the CRM: Slack and email, as the admin's YAML names them.

Like the rest of the config, unknown keys are errors and secrets never live in the file: the
Slack token and the SMTP login are named by their environment variables (`secret_envs`).
"""

from __future__ import annotations

from typing import Self

from pydantic import BaseModel, ConfigDict, Field, model_validator

# An environment variable's name, as a shell would accept it.
ENV_NAME_PATTERN = r"^[A-Za-z_][A-Za-z0-9_]*$"


class _Strict(BaseModel):
    model_config = ConfigDict(extra="forbid", frozen=True)


class SlackChannel(_Strict):
    """A Slack app's bot token (chat:write, users:read.email) posting DMs or to a channel."""

    token_env: str = Field("SLACK_BOT_TOKEN", pattern=ENV_NAME_PATTERN)
    # Slack's Web API; a test points it at a loopback fake. Method names are joined onto it.
    # https only, but on this machine (a fake): the bot token travels in every request.
    base_url: str = Field(
        "https://slack.com/api/",
        pattern=r"^(https://\S+|http://(127\.0\.0\.1|localhost)(:\d+)?/\S*)/$",
    )
    # A channel id (C0123...) or name for alerts that go to a channel rather than a person.
    default_channel: str | None = Field(None, min_length=1)
    timeout_seconds: float = Field(10, gt=0, le=120)

    def secret_envs(self) -> dict[str, str]:
        """The variables this channel needs, by key name."""
        return {"token_env": self.token_env}


class EmailChannel(_Strict):
    """An SMTP relay; STARTTLS on the submission port unless turned off, login when named."""

    host: str = Field(min_length=1)
    port: int = Field(587, ge=1, le=65535)
    starttls: bool = True
    from_address: str = Field(pattern=r"^[^@\s<>]+@[^@\s<>]+$")
    username_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    password_env: str | None = Field(None, pattern=ENV_NAME_PATTERN)
    timeout_seconds: float = Field(10, gt=0, le=120)

    @model_validator(mode="after")
    def _login_is_whole(self) -> Self:
        if (self.username_env is None) != (self.password_env is None):
            msg = "username_env and password_env go together: name both, or neither"
            raise ValueError(msg)
        return self

    def secret_envs(self) -> dict[str, str]:
        """The variables this relay needs, by key name (none without a login)."""
        if self.username_env is None or self.password_env is None:
            return {}
        return {"username_env": self.username_env, "password_env": self.password_env}


class Channels(_Strict):
    slack: SlackChannel | None = None
    email: EmailChannel | None = None

    def secret_envs(self) -> dict[str, str]:
        """Every variable the configured channels need, by YAML path under `channels`."""
        found: dict[str, str] = {}
        for name, channel in (("slack", self.slack), ("email", self.email)):
            if channel is not None:
                for key, env_name in channel.secret_envs().items():
                    found[f"{name}.{key}"] = env_name
        return found
