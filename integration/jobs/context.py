"""Builds what a process needs from its Settings: config, Redis, the CRM adapter, the playbooks.

One of the composition roots (with webhooks/app.py and integration/cli/main.py): the only place that
knows which adapter and which playbooks go with the core.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path

from redis import Redis

from adapters import build_adapter
from adapters.protocol import CrmAdapter
from integration.config.loading import load_config
from integration.config.schema import Config
from integration.config.settings import Settings, lookup_env
from integration.store import layout
from playbooks.engine import Playbook, load_catalogue, resolve_playbooks

REDIS_TIMEOUT_SECONDS = 5


@dataclass(frozen=True, slots=True)
class Context:
    settings: Settings
    config: Config
    redis: Redis
    crm: CrmAdapter
    playbooks: list[Playbook]


def read_config(path: Path) -> Config:
    """Load the admin's config with secrets from the environment and the shipped playbook names."""
    return load_config(path, lookup_env, load_catalogue())


def connect_redis(url: str) -> Redis:
    return Redis.from_url(
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
        playbooks=resolve_playbooks(load_catalogue(), config.playbooks),
    )
