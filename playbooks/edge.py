"""What running playbook actions needs: the context (Redis, the CRM, the config, the alert
channels) and the CRM users work is routed to, looked up once an hour.
"""

from __future__ import annotations

import json
from dataclasses import asdict
from typing import Protocol

from redis import Redis

from adapters.channels.email import EmailSender
from adapters.channels.slack import SlackSender
from adapters.protocol import CrmAdapter, CrmUser
from integration.config.schema import Config
from integration.store import keys

USER_CACHE_SECONDS = 3600


class ExecutionContext(Protocol):
    """What running an action needs: Redis, the CRM, the config and the alert channels
    (integration.jobs.context has them all)."""

    @property
    def redis(self) -> Redis: ...

    @property
    def crm(self) -> CrmAdapter: ...

    @property
    def config(self) -> Config: ...

    @property
    def slack(self) -> SlackSender | None: ...

    @property
    def email(self) -> EmailSender | None: ...


def user(context: ExecutionContext, user_id: str) -> CrmUser | None:
    """A CRM user (name, email, manager), looked up once an hour: routing and alerts ask often."""
    key = keys.crm_user(context.crm.name, user_id)
    cached = context.redis.get(key)
    if cached:
        return CrmUser(**json.loads(cached))
    found = context.crm.user(user_id)
    if found is not None:
        context.redis.set(key, json.dumps(asdict(found)), ex=USER_CACHE_SECONDS)
    return found
