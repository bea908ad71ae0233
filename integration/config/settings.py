"""Process settings from the environment: where the config file and Redis are."""

from __future__ import annotations

import os
from pathlib import Path
from urllib.parse import parse_qsl, urlencode, urlsplit, urlunsplit

from pydantic import AliasChoices, Field, model_validator
from pydantic_settings import BaseSettings, SettingsConfigDict

DEFAULT_REDIS_URL = "redis://localhost:6379/0"


class Settings(BaseSettings):
    """Read once per process (web app factory, worker, CLI) and passed down.

    Two Redis: `redis_url` is the queue Redis (RQ's queues, workers and cron, and the small
    global coordination state: the CRM rate limiter, pause, tokens, lookup caches); RQ cannot
    run on a Redis Cluster (rq issue 1942). `state_redis_url` holds per-account state (rollups,
    assessments, playbook state), a single Redis or, with `state_redis_cluster`, a Redis
    Cluster (a redis:// URL cannot say which). Unset, state shares the queue Redis's client.
    """

    model_config = SettingsConfigDict(env_prefix="INTEGRATION_", extra="ignore")

    config: Path = Path("config.yaml")
    redis_url: str = Field(
        default=DEFAULT_REDIS_URL,
        validation_alias=AliasChoices("INTEGRATION_REDIS_URL", "REDIS_URL"),
    )
    state_redis_url: str | None = Field(
        default=None,
        validation_alias=AliasChoices("INTEGRATION_STATE_REDIS_URL", "STATE_REDIS_URL"),
    )
    state_redis_cluster: bool = False
    log_level: str = "INFO"

    @model_validator(mode="after")
    def _cluster_needs_its_own_url(self) -> Settings:
        """The queue Redis is never a cluster, so a cluster must be named by its own URL."""
        if self.state_redis_cluster and not self.state_redis_url:
            msg = (
                "INTEGRATION_STATE_REDIS_CLUSTER is set but INTEGRATION_STATE_REDIS_URL is not: "
                "name one node of the cluster (RQ's queues stay on INTEGRATION_REDIS_URL)"
            )
            raise ValueError(msg)
        return self


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
