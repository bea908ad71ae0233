"""CRM adapters behind one protocol, picked from config here and nowhere else."""

from __future__ import annotations

from redis import Redis

from adapters.protocol import CrmAdapter
from integration.config.schema import Config
from integration.errors import ConfigError


def build_adapter(config: Config, redis: Redis) -> CrmAdapter:
    """The adapter for `crm.kind`; config validation has already refused kinds not in this build."""
    if config.crm.kind == "sandbox":
        from adapters.sandbox.adapter import SandboxCrm

        sandbox = config.crm.sandbox
        return SandboxCrm.open(
            sandbox.path,
            config.account_match.crm_field,
            sandbox.seed_file,
            config.account_facts.crm_fields(),
        )
    if config.crm.kind == "hubspot":
        return _hubspot(config, redis)
    if config.crm.kind == "salesforce":
        from adapters.salesforce.adapter import SalesforceCrm
        from adapters.salesforce.login import login_with

        settings = config.crm.salesforce
        login = login_with(settings, config.secret)
        salesforce = SalesforceCrm(
            settings,
            config.account_match.crm_field,
            login,
            redis,
            facts=config.account_facts.crm_fields(),
        )
        salesforce.transport.budget = config.budget  # the API budget (adapters/budget.py)
        return salesforce
    path, msg = "crm.kind", f"the {config.crm.kind} adapter is not part of this build yet"
    raise ConfigError(path, msg)


def _hubspot(config: Config, redis: Redis) -> CrmAdapter:
    from adapters.hubspot.adapter import HubSpotCrm
    from adapters.hubspot.auth import OAuthTokens, PrivateAppToken, TokenSource

    settings = config.crm.hubspot
    tokens: TokenSource
    if settings.oauth is not None:
        oauth = settings.oauth
        tokens = OAuthTokens(
            base_url=settings.base_url,
            client_id=config.secret(oauth.client_id_env),
            client_secret=config.secret(oauth.client_secret_env),
            refresh_token=config.secret(oauth.refresh_token_env),
            redis=redis,
        )
    else:
        assert settings.access_token_env is not None  # noqa: S101 - validation requires one
        tokens = PrivateAppToken(config.secret(settings.access_token_env))
    hubspot = HubSpotCrm(
        settings,
        config.account_match.crm_field,
        tokens,
        redis,
        facts=config.account_facts.crm_fields(),
    )
    hubspot.transport.budget = config.budget  # the API budget (adapters/budget.py)
    return hubspot
