"""Process settings from the environment: where the config file and Redis are."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


class Settings(BaseSettings):
    """Read once per process (web app factory, worker, CLI) and passed down."""

    model_config = SettingsConfigDict(env_prefix="INTEGRATION_", extra="ignore")

    config: Path = Path("config.yaml")
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("INTEGRATION_REDIS_URL", "REDIS_URL"),
    )
    log_level: str = "INFO"


def lookup_env(name: str) -> str | None:
    """A secret the config names by environment variable; this module is the only env reader."""
    return os.environ.get(name)


def masked(url: str) -> str:
    """The URL with any password in it (user:password@ or ?password=) shown as ***."""
    parts = urlsplit(url)
    query = parse_qsl(parts.query, keep_blank_values=True)
    if parts.password is None and all(name != "password" for name, _ in query):
        return url
    user, _, host = parts.netloc.rpartition("@")
    if parts.password is not None:
        user = f"{user.partition(':')[0]}:***"
    masked_query = [(name, "***" if name == "password" else value) for name, value in query]
    netloc = f"{user}@{host}" if user else host
    return urlunsplit(parts._replace(netloc=netloc, query=urlencode(masked_query, safe="*")))
