"""Builds what a process needs from its Settings: config, Redis, the CRM adapter, the playbooks.

One of the composition roots (with webhooks/app.py and integration/cli/main.py): the only place that
knows which adapter and which playbooks go with the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import cast

from redis import Redis

from adapters import build_adapter
from adapters.channels.email import EmailSender
from adapters.channels.slack import SlackSender
from adapters.protocol import CrmAdapter
from integration.config.loading import load_config
from integration.config.schema import Config
from integration.config.settings import Settings, lookup_env
from integration.errors import ConfigError, InvalidConfigError
from integration.jobs.worker import PatientRedis
from integration.store import layout
from integration.store.cluster import StateCluster, StateRedis
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import Playbook, shipped_definitions

REDIS_TIMEOUT_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Context:
    """`redis` holds per-account state (maybe a Redis Cluster); `queue_redis` holds RQ and the
    CRM coordination keys. Without INTEGRATION_STATE_REDIS_URL they are the same client."""

    settings: Settings
    config: Config
    redis: StateRedis
    crm: CrmAdapter
    playbooks: list[Playbook]
    queue_redis: Redis
    slack: SlackSender | None = None
    email: EmailSender | None = None


def read_config(path: Path) -> Config:
    """Load the admin's config with secrets from the environment, and check its playbooks
    (the shipped ones as tuned, and the admin's own): all problems in one InvalidConfigError."""
    return load_config(path, lookup_env, shipped_definitions(), playbook_problems)


def playbook_problems(config: Config) -> list[ConfigError]:
    try:
        resolve_playbooks(config)
    except InvalidConfigError as exc:
        return list(exc.errors)
    return []


def connect_redis(url: str, *, patient: bool = False) -> Redis:
    """A client that fails fast (the web app answers 503, so senders retry), or, `patient`,
    one that waits out a Redis restart (the worker's own loop: integration/jobs/worker.py)."""
    client_class = PatientRedis if patient else Redis
    return client_class.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )


def connect_state_redis(settings: Settings, queue_redis: Redis) -> StateRedis:
    """The state client: `queue_redis` itself when no state URL is set (a single-Redis install
    runs as before, one client, one connection pool), else its own Redis or Redis Cluster."""
    url = settings.state_redis_url
    if not url:
        return queue_redis
    if not settings.state_redis_cluster:
        return connect_redis(url)
    cluster = StateCluster.from_url(
        url, socket_timeout=REDIS_TIMEOUT_SECONDS, socket_connect_timeout=REDIS_TIMEOUT_SECONDS
    )
    return cast("StateRedis", cluster)  # see StateRedis: typed as Redis for now


def build_context(settings: Settings, config: Config | None = None) -> Context:
    """Adapters get the queue Redis: their limiter, pause, tokens and lookup caches are small
    global state that every worker shares, and `limits` needs a plain client's pool."""
    config = config or read_config(settings.config)
    queue_redis = connect_redis(settings.redis_url)
    redis = connect_state_redis(settings, queue_redis)
    layout.prepare(redis)
    return Context(
        settings=settings,
        config=config,
        redis=redis,
        queue_redis=queue_redis,
        crm=build_adapter(config, queue_redis),
        playbooks=resolve_playbooks(config),
        slack=_slack(config),
        email=_email(config),
    )


def _slack(config: Config) -> SlackSender | None:
    slack = config.channels.slack
    if slack is None:
        return None
    return SlackSender(config.secret(slack.token_env), slack.base_url, slack.timeout_seconds)


def _email(config: Config) -> EmailSender | None:
    email = config.channels.email
    if email is None:
        return None
    login = email.secret_envs()
    return EmailSender(
        email,
        config.secret(login["username_env"]) if login else None,
        config.secret(login["password_env"]) if login else None,
    )
