"""Logging in to Salesforce with the configured flow (reference/salesforce.md 10)."""

from __future__ import annotations

from collections.abc import Callable

import requests
from simple_salesforce.api import Salesforce

from integration.config import SalesforceCrm as SalesforceSettings


def login_with(
    settings: SalesforceSettings, secret: Callable[[str], str]
) -> Callable[[requests.Session], Salesforce]:
    """A function that logs in on first use; secrets are read from the environment by name."""
    auth, version = settings.auth, settings.api_version

    def login(session: requests.Session) -> Salesforce:
        if auth.flow == "jwt":
            return Salesforce(
                username=secret(auth.username_env),
                consumer_key=secret(auth.consumer_key_env),
                privatekey=secret(auth.private_key_env),
                domain=auth.domain,
                version=version,
                session=session,
            )
        if auth.flow == "client_credentials":
            return Salesforce(
                consumer_key=secret(auth.consumer_key_env),
                consumer_secret=secret(auth.consumer_secret_env),
                domain=auth.domain,
                version=version,
                session=session,
            )
        return Salesforce(
            username=secret(auth.username_env),
            password=secret(auth.password_env),
            security_token=secret(auth.security_token_env),
            domain=auth.domain,
            version=version,
            session=session,
        )

    return login
