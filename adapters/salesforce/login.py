"""Logging in to Salesforce with the configured flow (reference/salesforce.md 10)."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import requests
from simple_salesforce.api import Salesforce

from integration.config.schema import SalesforceCrm as SalesforceSettings

_ARGUMENT = {
    "username_env": "username",
    "consumer_key_env": "consumer_key",
    "private_key_env": "privatekey",
    "consumer_secret_env": "consumer_secret",
    "password_env": "password",
    "security_token_env": "security_token",
}


def login_with(
    settings: SalesforceSettings, secret: Callable[[str], str]
) -> Callable[[requests.Session], Salesforce]:
    """A function that logs in on first use; secrets are read from the environment by name."""
    auth, version = settings.auth, settings.api_version

    def login(session: requests.Session) -> Salesforce:
        # The flow's secrets (config.secret_envs) as simple-salesforce's arguments: which of
        # them are given picks its login (JWT, client credentials or password).
        credentials: dict[str, Any] = {
            _ARGUMENT[key]: secret(env_name) for key, env_name in auth.secret_envs().items()
        }
        return Salesforce(**credentials, domain=auth.domain, version=version, session=session)

    return login
