"""Builds what a process needs from its Settings: config, Redis, the CRM adapter, the playbooks.

One of the composition roots (with webhooks/app.py and integration/cli/main.py): the only place that
knows which adapter and which playbooks go with the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

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
from playbooks.catalogue import resolve_playbooks
from playbooks.engine import Playbook, shipped_definitions

REDIS_TIMEOUT_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    config: Config
    redis: Redis
    crm: CrmAdapter
    playbooks: list[Playbook]
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


def build_context(settings: Settings, config: Config | None = None) -> Context:
    config = config or read_config(settings.config)
    redis = connect_redis(settings.redis_url)
    layout.prepare(redis)
    return Context(
        settings=settings,
        config=config,
        redis=redis,
        crm=build_adapter(config, redis),
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
